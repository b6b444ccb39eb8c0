"""Form fields for djongo.models' document fields (also what the admin uses).

- EmbeddedFormField: the container's fields as a nested form (a fieldset
  of its own, prefixed by the field's name: ``address-city``), each field
  with its own errors; the outer field reports that the nested form has
  errors.
- ArrayFormField: a formset of the container's form (or of one ``value``
  field for a list of scalars): items can be added (an "Add another" button
  that copies a blank item, or the blank rows rendered without
  JavaScript), edited, reordered (the ORDER column) and removed (DELETE).
- ObjectIdFormField: 24 hexadecimal digits as a bson.ObjectId.

Both nested kinds bind the POSTed data to their form/formset in
``value_from_datadict`` and give that bound form back to ``render``, so an
invalid submission shows again with what was typed and the errors where
they belong.
"""
import json

import bson
from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict, modelform_factory
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _


class EmbeddedModelForm(forms.ModelForm):
    """The default form of a container: validation without the database (a
    sub-document has no collection to check uniqueness against)."""

    def validate_unique(self):
        pass


def _container_form(model_container, model_form_class, model_form_kwargs):
    from djongo.models.fields import container_class

    kwargs = {"fields": "__all__", **(model_form_kwargs or {})}
    return modelform_factory(container_class(model_container), form=model_form_class or EmbeddedModelForm, **kwargs)


def _initial(value):
    """A container instance as form initial data (scalars as they are)."""
    if value is None or isinstance(value, dict) or not hasattr(value, "_meta"):
        return value
    return model_to_dict(value)


# ---- rendering: Django admin's own markup ----

# Inside a document group the outer row's ``errors`` class (set by the
# admin when the group has errors) must not turn every input red: Django's
# ``.errors input`` rule matches all of them. Only the rows of invalid
# sub-fields keep the red border. (Two class selectors outrank the admin's
# one; an inline <style> needs no static file to be collected.)
_GROUP_STYLE = mark_safe(
    "<style>"
    ".djongo-doc.djongo-doc :is(input,select,textarea){border:1px solid var(--border-color)}"
    ".djongo-doc.djongo-doc .form-row.errors :is(input,select,textarea){border-color:var(--error-fg)}"
    ".djongo-doc .form-row{padding-left:0;padding-right:0}"
    ".djongo-array.inline-group{margin:0;min-width:min(100%,40em)}"
    # item headings as the admin heads an inline's fieldsets (.inline-related h4)
    ".djongo-array .inline-related h3{margin:0;padding:5px 10px;font-size:.8125rem;color:var(--body-medium-color);"
    "background:var(--darkened-bg);border:1px solid var(--hairline-color);border-left:0;border-right:0}"
    ".djongo-array .inline-related h3 span.delete label{display:inline;width:auto;float:none;padding:0}"
    "</style>")


def _field_rows(form, skip=()):
    """A form's fields as the admin's fieldset rows (fieldset.html): one
    ``form-row field-<name>`` each, ``errors`` only on the invalid ones,
    required labels marked as the admin marks them; hidden inputs at the
    end."""
    rows, hidden = [], []
    for bf in form:
        if bf.name in skip:
            continue
        if bf.is_hidden:
            hidden.append(str(bf))
            continue
        checkbox = isinstance(bf.field.widget, forms.CheckboxInput)
        label = bf.label_tag(attrs={"class": "required"} if bf.field.required else None,
                             label_suffix="" if checkbox else None)
        help_text = format_html('<div class="help"><div>{}</div></div>', bf.help_text) if bf.help_text else ""
        rows.append(format_html(
            '<div class="form-row field-{}{}">{}<div><div class="flex-container{}">{}{}</div>{}</div></div>',
            bf.name, " errors" if bf.errors else "", bf.errors, " checkbox-row" if checkbox else "",
            bf if checkbox else label, label if checkbox else bf, help_text))
    return mark_safe("".join(rows) + "".join(hidden))


# ---- EmbeddedField ----


class EmbeddedWidget(forms.Widget):
    template_name = ""  # rendered in Python: no template directory to install

    def __init__(self, form_class, attrs=None):
        super().__init__(attrs)
        self.form_class = form_class

    def make_form(self, name, value):
        if isinstance(value, forms.BaseForm):
            return value
        return self.form_class(prefix=name, initial=_initial(value), use_required_attribute=False)

    def value_from_datadict(self, data, files, name):
        if self.value_omitted_from_data(data, files, name):
            return None  # not in the submission (a form without this field)
        # no HTML "required": an optional sub-document may be left blank
        # (the server validates, as formsets do for their rows)
        return self.form_class(data, files, prefix=name, use_required_attribute=False)

    def value_omitted_from_data(self, data, files, name):
        return not any(k.startswith(name + "-") for k in data)

    def render(self, name, value, attrs=None, renderer=None):
        form = self.make_form(name, value)
        return format_html('{}<fieldset class="module aligned djongo-embedded djongo-doc" id="{}">{}{}</fieldset>',
                           _GROUP_STYLE, (attrs or {}).get("id", "id_" + name), form.non_field_errors(),
                           _field_rows(form))

    def id_for_label(self, id_):
        return None  # the label names the fieldset, not one input


class EmbeddedFormField(forms.Field):
    default_error_messages = {"nested": _("Please correct the errors in the fields below.")}

    def __init__(self, model_container=None, model_form_class=None, model_form_kwargs=None, **kwargs):
        self.form_class = _container_form(model_container, model_form_class, model_form_kwargs)
        kwargs.pop("max_length", None)
        kwargs["widget"] = EmbeddedWidget(self.form_class)
        super().__init__(**kwargs)

    def _is_blank(self, form):
        return not any(form.data.get(form.add_prefix(n)) not in (None, "") for n in form.fields)

    def clean(self, value):
        if not isinstance(value, forms.BaseForm):
            return super().clean(value)
        if self._is_blank(value) and not self.required:
            return None
        if not value.is_valid():
            raise ValidationError(self.error_messages["nested"], code="nested")
        return value.instance

    def bound_data(self, data, initial):
        return data

    def has_changed(self, initial, data):
        if isinstance(data, forms.BaseForm):
            data.initial = _initial(initial) or {}
            return data.has_changed()
        return super().has_changed(initial, data)


# ---- ArrayField ----


class _ScalarItemForm(forms.Form):
    """One item of a list of scalars: its ``value``."""


def _scalar_form(base_field):
    field = base_field.formfield() or forms.CharField()
    field.label = _("Value")
    return type("ItemForm", (_ScalarItemForm,), {"value": field})


class ArrayWidget(forms.Widget):
    template_name = ""

    def __init__(self, formset_class, scalar, attrs=None):
        super().__init__(attrs)
        self.formset_class = formset_class
        self.scalar = scalar

    def make_formset(self, name, value):
        if isinstance(value, forms.BaseFormSet):
            return value
        items = list(value or [])
        initial = [{"value": v} for v in items] if self.scalar else [_initial(v) for v in items]
        return self.formset_class(prefix=name, initial=initial)

    def value_from_datadict(self, data, files, name):
        if self.value_omitted_from_data(data, files, name):
            return None  # not in the submission: no management form to bind
        return self.formset_class(data, files, prefix=name)

    def value_omitted_from_data(self, data, files, name):
        return name + "-TOTAL_FORMS" not in data

    def _item(self, form, label, index=None):
        """One item as a stacked inline's (edit_inline/stacked.html): a
        heading with its number and the Delete box, then its rows;
        ``errors`` on the item only when the item itself is invalid."""
        delete = form["DELETE"] if "DELETE" in form.fields else None
        return format_html(
            '<div class="inline-related djongo-array-item{}"{}><h3><b>{}:</b> <span class="inline_label">{}</span>'
            '{}</h3>{}<fieldset class="module aligned">{}</fieldset></div>',
            " errors" if form.is_bound and form.errors else "",
            format_html(' data-index="{}"', index) if index is not None else "", _("Item"), label,
            format_html(' <span class="delete">{} {}</span>', delete, delete.label_tag(label_suffix=""))
            if delete else "", form.non_field_errors(), _field_rows(form, skip=("DELETE",)))

    def render(self, name, value, attrs=None, renderer=None):
        formset = self.make_formset(name, value)
        fid = (attrs or {}).get("id", "id_" + name)
        rows = mark_safe("".join(self._item(f, "#%d" % (i + 1), i) for i, f in enumerate(formset.forms)))
        # the "Add another item" link copies the blank item in <template>,
        # numbering it with TOTAL_FORMS as Django's admin inlines do
        # (values as JSON string literals: safe inside the script)
        script = (
            "(function(){var box=document.getElementById(%(id)s);"
            "var btn=box.querySelector('.djongo-array-add');btn.addEventListener('click',function(e){"
            "e.preventDefault();var total=box.querySelector('input[name=\"'+%(name)s+'-TOTAL_FORMS\"]');"
            "var n=parseInt(total.value,10);var html=box.querySelector('template').innerHTML"
            ".replace(/__prefix__/g,n);var d=document.createElement('div');d.innerHTML=html;"
            "var item=d.firstElementChild;item.setAttribute('data-index',n);"
            "item.querySelector('.inline_label').textContent='#'+(n+1);"
            "box.querySelector('.djongo-array-items').appendChild(item);total.value=n+1;});})();"
        ) % {k: json.dumps(str(v)).replace("<", "\\u003c") for k, v in (("id", fid), ("name", name))}
        return format_html(
            '{}<div class="inline-group djongo-array djongo-doc" id="{}">{}{}<div class="djongo-array-items">{}</div>'
            '<template>{}</template>'
            '<div class="add-row"><a href="#" role="button" class="addlink djongo-array-add">{}</a></div>'
            '<script>{}</script></div>',
            _GROUP_STYLE, fid, formset.management_form, formset.non_form_errors(), rows,
            self._item(formset.empty_form, ""), _("Add another item"), mark_safe(script))

    def id_for_label(self, id_):
        return None


class ArrayFormField(forms.Field):
    """A list through a formset; the cleaned value is the items in ORDER
    order, deleted and untouched blank items left out."""

    default_error_messages = {"nested": _("Please correct the errors in the items below.")}

    def __init__(self, model_container=None, base_field=None, model_form_class=None, model_form_kwargs=None,
                 extra=1, **kwargs):
        self.scalar = model_container is None
        form = _scalar_form(base_field) if self.scalar else _container_form(model_container, model_form_class,
                                                                             model_form_kwargs)
        self.formset_class = forms.formset_factory(form, extra=extra, can_delete=True, can_order=True)
        kwargs.pop("max_length", None)
        kwargs["widget"] = ArrayWidget(self.formset_class, self.scalar)
        super().__init__(**kwargs)

    def clean(self, value):
        if not isinstance(value, forms.BaseFormSet):
            value = super().clean(value)
            return [] if value is None else value
        if not value.is_valid():
            raise ValidationError(self.error_messages["nested"], code="nested")
        items = []
        for form in value.ordered_forms if value.can_order else value.forms:
            if value.can_delete and value._should_delete_form(form):
                continue
            if not form.has_changed() and form not in value.initial_forms:
                continue
            items.append(form.cleaned_data.get("value") if self.scalar else form.instance)
        if self.required and not items:
            raise ValidationError(self.error_messages["required"], code="required")
        return items

    def bound_data(self, data, initial):
        return data

    def has_changed(self, initial, data):
        if isinstance(data, forms.BaseFormSet):
            try:
                new = self.clean(data)
            except ValidationError:
                return True
            return [_initial(v) for v in new] != [_initial(v) for v in initial or []]
        return super().has_changed(initial, data)


# ---- ObjectId ----


class ObjectIdFormField(forms.CharField):
    default_error_messages = {"invalid": _("Enter a valid ObjectId (24 hexadecimal digits).")}

    def __init__(self, **kwargs):
        # no length validators: they would run on the ObjectId to_python
        # made; the format is checked there
        kwargs.pop("max_length", None)
        kwargs.pop("min_length", None)
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("maxlength", "24")

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        try:
            return bson.ObjectId(value)
        except bson.errors.InvalidId:
            raise ValidationError(self.error_messages["invalid"], code="invalid")

    def prepare_value(self, value):
        return "" if value is None else str(value)
