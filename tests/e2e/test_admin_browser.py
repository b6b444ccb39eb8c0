"""The example site in a real browser (Debian's headless Chromium driven by
Selenium): `manage.py runserver` on a fresh data directory, then log into
the admin, add, edit, list, search and delete entries as a person would;
the documents are then checked in the engine, from another process, through
the DB-API driver's MongoDB commands (not through Django)."""
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from djongo import driver

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (scripts/deps.sh installs them)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def site(tmp_path):
    data = tmp_path / "site-data"
    # the example site, with the djongo this test imports (its PYTHONPATH kept)
    path = [str(ROOT / "example")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, DJONGO_HOST=str(data), PYTHONPATH=os.pathsep.join(path))
    manage = [sys.executable, "manage.py"]
    for args in (["migrate", "--no-input"], ["seed"]):
        subprocess.run(manage + args, cwd=ROOT / "example", env=env, check=True, capture_output=True, timeout=300)
    port = free_port()
    server = subprocess.Popen(manage + ["runserver", "--noreload", "127.0.0.1:%d" % port], cwd=ROOT / "example",
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    yield url, data
    server.terminate()
    server.wait(10)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"):
        opts.add_argument(a)
    b = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    b.implicitly_wait(5)
    yield b
    b.quit()


def wait_text(b, text):
    """Waits for a page (after a click or submit) to show text."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(b, 15).until(lambda d: text in d.page_source)
    return True


def log_in(b, url, path, expect):
    """Logs in as admin/admin and lands on path (a page showing expect)."""
    from selenium.webdriver.common.by import By

    b.get(url + "/admin/login/?next=" + path)
    b.find_element(By.NAME, "username").send_keys("admin")
    b.find_element(By.NAME, "password").send_keys("admin")
    b.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    assert wait_text(b, expect)


def engine(data):
    """The site's database from this process, through the DB-API driver's
    MongoDB commands (not through Django); a context manager that closes it."""
    return driver.connect(str(data), db="publishing", autocommit=True)


def fill(b, fields):
    """Sets the form's inputs, by id, in order: each is cleared (it may hold
    a default, the value being edited, or the input of a form shown again
    with its errors), then typed into as a person would."""
    from selenium.webdriver.common.by import By

    for id_, text in fields.items():
        field = b.find_element(By.ID, id_)
        field.clear()
        field.send_keys(text)


def test_admin_in_a_browser(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, data = site
    b = browser
    log_in(b, url, "/admin/", "Site administration")

    # list and search
    b.get(url + "/admin/blog/entry/")
    assert "Abbey Road at 55" in b.page_source and "4 entries" in b.page_source
    b.find_element(By.ID, "searchbar").send_keys("omelette\n")
    WebDriverWait(b, 15).until(lambda d: "q=omelette" in d.current_url)
    assert "The perfect omelette" in b.page_source and "Abbey Road" not in b.page_source

    # add
    b.get(url + "/admin/blog/entry/add/")
    Select(b.find_element(By.ID, "id_blog")).select_by_visible_text("Cooking")
    fill(b, {"id_headline": "Soup from the browser", "id_body_text": "Leeks and potatoes.", "id_pub_date_0": "2026-02-03",
             "id_pub_date_1": "08:15:00", "id_rating": "4"})
    Select(b.find_element(By.ID, "id_tags_from")).select_by_visible_text("food")
    b.find_element(By.ID, "id_tags_add").click()
    b.find_element(By.NAME, "_save").click()
    assert wait_text(b, "was added successfully")

    # edit: first an invalid URL (the error is shown, nothing saved), then a valid edit
    b.find_element(By.LINK_TEXT, "Soup from the browser").click()
    fill(b, {"id_website": "not a url"})
    b.find_element(By.NAME, "_save").click()
    assert wait_text(b, "Enter a valid URL.")
    fill(b, {"id_website": "https://soup.example.com", "id_headline": "Soup from the browser, edited"})
    b.find_element(By.NAME, "_save").click()
    assert wait_text(b, "was changed successfully")

    # the documents, from another process, through MongoDB commands
    with engine(data) as conn:
        docs = conn.command({"find": "blog_entry", "filter": {"headline": "Soup from the browser, edited"}})
        (doc,) = docs["cursor"]["firstBatch"]
        assert doc["rating"] == 4 and doc["website"] == "https://soup.example.com"
        assert doc["pub_date"].isoformat() == "2026-02-03T08:15:00"
        cooking = conn.command({"find": "blog_blog", "filter": {"name": "Cooking"}})["cursor"]["firstBatch"][0]
        assert doc["blog_id"] == cooking["id"]
        tags = conn.command({"find": "blog_entry_tags", "filter": {"entry_id": doc["id"]}})["cursor"]["firstBatch"]
        food = conn.command({"find": "blog_tag", "filter": {"name": "food"}})["cursor"]["firstBatch"][0]
        assert [t["tag_id"] for t in tags] == [food["id"]]
        entry_id = doc["id"]

    # delete
    b.get(url + "/admin/blog/entry/%d/delete/" % entry_id)
    b.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    assert wait_text(b, "was deleted successfully")
    with engine(data) as conn:
        assert conn.command({"count": "blog_entry", "query": {"id": entry_id}})["n"] == 0
        assert conn.command({"count": "blog_entry_tags", "query": {"entry_id": entry_id}})["n"] == 0
        assert conn.command({"count": "blog_entry", "query": {}})["n"] == 4


def find_entry(data, headline):
    with engine(data) as conn:
        (doc,) = conn.command({"find": "blog_entry", "filter": {"headline": headline}})["cursor"]["firstBatch"]
    return doc


def test_embedded_address_and_contributors_in_a_browser(site, browser):
    """djongo.models in the admin: an entry with an embedded address (a
    nested fieldset) and three contributors (an array: items added with the
    "Add another item" button), then one item edited and one removed, an
    invalid URL refused with its error and the input kept; the stored
    document is checked from another process."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, data = site
    b = browser
    log_in(b, url, "/admin/blog/entry/add/", "Add entry")

    Select(b.find_element(By.ID, "id_blog")).select_by_visible_text("Cooking")
    fill(b, {"id_headline": "Dumplings", "id_pub_date_0": "2026-03-04", "id_pub_date_1": "12:00:00",
             "id_address-street": "1 Rue de la Paix", "id_address-city": "Paris", "id_address-homepage": "not a url"})
    # one blank item is there; two more through the button
    add = b.find_element(By.CSS_SELECTOR, "#id_contributors .djongo-array-add")
    add.click()
    add.click()
    for i, (name, role) in enumerate([("Ann", "writer"), ("Bob", "photos"), ("Cy", "recipe")]):
        fill(b, {"id_contributors-%d-name" % i: name, "id_contributors-%d-role" % i: role})
    b.find_element(By.NAME, "_save").click()

    # the invalid URL: its error beside the field, nothing saved, input kept
    assert wait_text(b, "Enter a valid URL.")
    assert b.find_element(By.ID, "id_address-city").get_attribute("value") == "Paris"
    assert b.find_element(By.ID, "id_contributors-2-name").get_attribute("value") == "Cy"
    fill(b, {"id_address-homepage": "https://dumplings.example/"})
    b.find_element(By.NAME, "_continue").click()
    assert wait_text(b, "was added successfully")

    doc = find_entry(data, "Dumplings")
    assert doc["address"] == {"street": "1 Rue de la Paix", "city": "Paris", "country": "",
                              "homepage": "https://dumplings.example/"}
    assert [(c["name"], c["role"]) for c in doc["contributors"]] == [("Ann", "writer"), ("Bob", "photos"),
                                                                     ("Cy", "recipe")]

    # edit one item, remove another
    fill(b, {"id_contributors-1-role": "illustrations"})
    b.find_element(By.ID, "id_contributors-0-DELETE").click()
    b.find_element(By.NAME, "_save").click()
    assert wait_text(b, "was changed successfully")

    doc = find_entry(data, "Dumplings")
    assert [(c["name"], c["role"]) for c in doc["contributors"]] == [("Bob", "illustrations"), ("Cy", "recipe")]
    assert doc["address"]["city"] == "Paris"

    # the changelist shows the address, and search reaches into the documents
    b.get(url + "/admin/blog/entry/?q=illustr")
    assert "Dumplings" in b.page_source and "1 Rue de la Paix, Paris" in b.page_source


def test_text_search_box_in_a_browser(site, browser):
    """The site's search box (blog.views.index) reads the entries' text
    index (djongo.models.TextIndex, the headline__search lookup, TextScore):
    a word finds its stemmed forms, a -word excludes, the best match comes
    first; an entry added in the admin is found by its words at once (the
    index follows writes), and the plan of such a search reads the index."""
    from selenium.webdriver.common.by import By

    url, data = site
    b = browser

    def search(text):
        b.get(url + "/")
        box = b.find_element(By.NAME, "q")
        box.clear()
        box.send_keys(text + "\n")
        assert wait_text(b, "found for")
        return [li.text for li in b.find_elements(By.CSS_SELECTOR, "li.hit")]

    hits = search("steps")  # "Bread in five steps": stemmed, "step" and "steps" meet
    assert len(hits) == 1 and hits[0].startswith("Bread in five steps in Cooking")
    assert search("road -abbey") == []
    hits = search("lost bread")  # each entry holds one of the words; the shorter headline scores more
    assert [h.split(" in ")[0] for h in hits] == ["Bread", "Lennon's lost demo found"]

    log_in(b, url, "/admin/blog/entry/add/", "Add entry")
    from selenium.webdriver.support.ui import Select
    Select(b.find_element(By.ID, "id_blog")).select_by_visible_text("Cooking")
    fill(b, {"id_headline": "Baking sourdough bread", "id_body_text": "Flour, water, salt.",
             "id_pub_date_0": "2026-02-03", "id_pub_date_1": "08:15:00", "id_rating": "4"})
    b.find_element(By.NAME, "_save").click()
    assert wait_text(b, "was added successfully")
    hits = search("bake salt")
    assert len(hits) == 1 and hits[0].startswith("Baking sourdough bread in Cooking")

    with engine(data) as conn:
        plan = conn.command({"explain": {"find": "blog_entry", "filter": {"$text": {"$search": "bread"}}}})
        scan = plan["queryPlanner"]["winningPlan"]["inputStage"]["inputStage"]["inputStage"]
        assert scan["stage"] == "IXSCAN" and scan["indexName"] == "entry_text"
