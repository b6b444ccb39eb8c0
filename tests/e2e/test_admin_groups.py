"""djongo.models' document fields in the admin, in headless Chromium:

- an EmbeddedField / ArrayField group looks like Django's stacked inlines
  (the ``inline-group`` / ``inline-related`` / ``add-row`` markup Django's
  admin CSS styles: items headed by a grey bar, "Add another item" a link
  with the add icon on the grey add row, not a bare browser button);
- after a validation error only the invalid sub-fields are red: the valid
  items, the untouched blank item and the sub-document's valid inputs keep
  their normal border (before, the outer row's ``errors`` class turned
  every input of the group red);
- ``list_filter = ["address__city", "contributors__role"]`` and
  ``search_fields`` on embedded paths, in a plain ModelAdmin: the filter
  lists the values found in the documents and filters by them.

Screenshots of each step go to $DJONGO_E2E_SCREENSHOTS (docs/admin/ holds
the ones taken before and after this change, side by side in
docs/admin/README.md)."""
import os
import pathlib

import pytest

from test_admin_browser import CHROMEDRIVER, CHROMIUM, browser, fill, log_in, site, wait_text  # noqa: F401

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (scripts/deps.sh installs them)")

RED = "186, 33, 33"  # Django admin's --error-fg (#ba2121), as rgb()/rgba() components


def shoot(b, element, name):
    where = os.environ.get("DJONGO_E2E_SCREENSHOTS")
    if where:
        pathlib.Path(where).mkdir(parents=True, exist_ok=True)
        b.execute_script("arguments[0].scrollIntoView()", element)
        element.screenshot(os.path.join(where, name + ".png"))


def border(b, id_):
    from selenium.webdriver.common.by import By

    color = b.find_element(By.ID, id_).value_of_css_property("border-top-color")
    return RED if RED in color else color


def test_document_groups_look_like_inlines(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    (url, _), b = site, browser
    log_in(b, url, "/admin/blog/entry/add/", "Add entry")
    shoot(b, b.find_element(By.CSS_SELECTOR, ".form-row.field-address"), "add-address")
    shoot(b, b.find_element(By.CSS_SELECTOR, ".form-row.field-contributors"), "add-contributors")
    group = b.find_element(By.ID, "id_contributors")
    # Django's stacked-inline markup, which its admin CSS styles
    assert "inline-group" in group.get_attribute("class").split()
    add = group.find_element(By.CSS_SELECTOR, "div.add-row a.djongo-array-add")
    assert add.tag_name == "a" and "icon-addlink" in add.value_of_css_property("background-image")
    item = group.find_element(By.CSS_SELECTOR, ".inline-related")
    assert item.find_element(By.CSS_SELECTOR, "h3 span.inline_label").text == "#1"
    assert item.find_element(By.CSS_SELECTOR, "h3 span.delete input[type=checkbox]").get_attribute("name") == \
        "contributors-0-DELETE"

    Select(b.find_element(By.ID, "id_blog")).select_by_visible_text("Cooking")
    fill(b, {"id_headline": "Pancakes", "id_pub_date_0": "2026-03-04", "id_pub_date_1": "12:00:00",
             "id_address-street": "1 Rue de la Paix", "id_address-city": "Paris", "id_address-homepage": "not a url"})
    add.click()
    add.click()  # three items: two filled (one invalid), one left blank
    fill(b, {"id_contributors-0-name": "Ann", "id_contributors-1-name": "Bob", "id_contributors-1-email": "bob at home"})
    b.find_element(By.NAME, "_save").click()
    assert wait_text(b, "Enter a valid URL.") and wait_text(b, "Enter a valid email address.")
    shoot(b, b.find_element(By.CSS_SELECTOR, ".form-row.field-address"), "errors-address")
    shoot(b, b.find_element(By.CSS_SELECTOR, ".form-row.field-contributors"), "errors-contributors")

    # only the invalid inputs are red
    assert border(b, "id_address-homepage") == RED and border(b, "id_contributors-1-email") == RED
    for ok in ("id_address-street", "id_address-city", "id_contributors-0-name", "id_contributors-0-email",
               "id_contributors-1-name", "id_contributors-2-name", "id_contributors-2-role", "id_headline"):
        assert border(b, ok) != RED, ok
    items = b.find_elements(By.CSS_SELECTOR, "#id_contributors .djongo-array-item")
    assert ["errors" in i.get_attribute("class").split() for i in items] == [False, True, False]

    # corrected: saved, the blank item left out
    fill(b, {"id_address-homepage": "https://pancakes.example/", "id_contributors-1-email": "bob@example.com"})
    b.find_element(By.NAME, "_save").click()
    assert wait_text(b, "was added successfully")


def test_list_filter_and_search_on_embedded_paths(site, browser):
    from selenium.webdriver.common.by import By

    (url, _), b = site, browser
    log_in(b, url, "/admin/blog/entry/", "Select entry to change")
    side = b.find_element(By.ID, "changelist-filter")
    shoot(b, side, "list-filter")
    cities = [a.text for a in side.find_elements(By.CSS_SELECTOR, "details[data-filter-title='city'] li a")]
    assert cities == ["All", "Berlin", "Liverpool", "London", "Lyon"]
    roles = [a.text for a in side.find_elements(By.CSS_SELECTOR, "details[data-filter-title='role'] li a")]
    assert roles == ["All", "photos", "recipe", "writer"]
    side.find_element(By.LINK_TEXT, "Lyon").click()
    assert wait_text(b, "1 entry")
    assert "The perfect omelette" in b.page_source and "Abbey Road" not in b.page_source
    b.get(url + "/admin/blog/entry/?contributors__role=photos")
    assert wait_text(b, "2 entries")
    assert "Lennon" in b.page_source and "omelette" in b.page_source and "Abbey Road" not in b.page_source
    b.get(url + "/admin/blog/entry/?_facets=True")  # the filter's counts
    side = b.find_element(By.ID, "changelist-filter")
    assert [a.text for a in side.find_elements(By.CSS_SELECTOR, "details[data-filter-title='role'] li a")] == \
        ["All", "photos (2)", "recipe (1)", "writer (2)"]
    b.get(url + "/admin/blog/entry/?q=liverpool")  # search_fields: address__city
    assert wait_text(b, "1 entry") and "Lennon" in b.page_source
