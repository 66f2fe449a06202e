"""The job list in pages (keyset, newest first) with filters, on the web page, the API and its Link header."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job
from tests.factories import dataset_from, job_row

STATUSES = [Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.QUEUED, Job.Status.CANCELLED]


@pytest.fixture
def many_jobs(alice, bob, make_member, sst2_sample, tiny_model):
    """120 jobs in alice's team (every 4th of them by carol, every 3rd an IA3 job), 5 in bob's."""
    carol = make_member("carol", "Team A")
    ours, theirs = dataset_from(alice, sst2_sample), dataset_from(bob, sst2_sample)
    jobs = [
        job_row(
            ours,
            tiny_model,
            status=STATUSES[n % 4],
            name=f"run {n:03d}" + (" sweep" if n % 10 == 0 else ""),
            method="ia3" if n % 3 == 0 else "lora",
            created_by=carol if n % 4 == 3 else alice,
        )
        for n in range(120)
    ]
    others = [job_row(theirs, tiny_model, name="bob's") for _ in range(5)]
    return jobs, others


def ids_on(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'name="ids" value="(\d+)"', html)]


def test_pages_walk_every_job_once_newest_first_at_a_constant_cost(client, many_jobs):
    jobs, others = many_jobs
    seen, url, costs = [], "/jobs/", []
    while url:
        with CaptureQueriesContext(connection) as queries:
            html = client.get(url).content.decode()
        costs.append(len(queries))
        page = ids_on(html)
        assert len(page) == (50 if len(seen) < 100 else 20)
        seen += page
        older = re.search(r'href="\?([^"]*)" id="older-page"', html)
        url = f"/jobs/?{older.group(1).replace('&amp;', '&')}" if older else None
    assert seen == sorted((j.pk for j in jobs), reverse=True)  # each once, newest first, none of bob's
    assert len(set(costs)) == 1  # page 3 costs what page 1 does
    assert 'id="newest-page"' in html


@pytest.mark.parametrize(
    "query, keep",
    [
        ("status=failed", lambda j: j.status == Job.Status.FAILED),
        ("method=ia3", lambda j: j.method == "ia3"),
        ("member=carol", lambda j: j.created_by.username == "carol"),
        ("search=SWEEP", lambda j: "sweep" in j.name),
        ("status=queued&method=ia3", lambda j: j.status == Job.Status.QUEUED and j.method == "ia3"),
    ],
)
def test_filters_keep_only_what_they_name_and_the_next_page_keeps_them(client, many_jobs, query, keep):
    jobs, _ = many_jobs
    expected = sorted((j.pk for j in jobs if keep(j)), reverse=True)
    html = client.get(f"/jobs/?{query}").content.decode()
    shown = ids_on(html)
    if len(expected) > 50:
        older = re.search(r'href="\?([^"]*)" id="older-page"', html).group(1).replace("&amp;", "&")
        assert query.split("&")[0] in older
        shown += ids_on(client.get(f"/jobs/?{older}").content.decode())
    assert shown == expected


def test_a_filter_value_that_does_not_exist_says_so_and_lists_everything(client, many_jobs):
    html = client.get("/jobs/?status=sleeping&dataset=999999").content.decode()
    assert "Select a valid choice" in html and len(ids_on(html)) == 50


def test_the_api_pages_with_a_link_header_and_the_same_filters(alice_api, many_jobs):
    jobs, _ = many_jobs
    seen, url = [], "/api/v1/jobs?limit=40&method=lora"
    while url:
        response = alice_api.get(url)
        assert response.status_code == 200
        seen += [job["id"] for job in response.json()]
        link = response.headers.get("Link")
        url = re.match(r'<http://testserver([^>]+)>; rel="next"', link).group(1) if link else None
    assert seen == sorted((j.pk for j in jobs if j.method == "lora"), reverse=True)
    search = alice_api.get("/api/v1/jobs?search=sweep&member=alice").json()
    assert [j["id"] for j in search] == sorted(
        (j.pk for j in jobs if "sweep" in j.name and j.created_by.username == "alice"), reverse=True
    )


def test_datasets_page_too_on_the_web_and_in_the_api(client, alice, alice_api, sst2_sample):
    made = [dataset_from(alice, sst2_sample, name=f"set {n:02d}") for n in range(53)]
    newest = sorted((d.pk for d in made), reverse=True)
    html = client.get("/datasets/").content.decode()
    first = [int(pk) for pk in re.findall(r'href="/datasets/(\d+)/"', html)]
    assert first == newest[:50]
    older = re.search(r'href="\?([^"]*)" id="older-page"', html).group(1).replace("&amp;", "&")
    rest = [
        int(pk) for pk in re.findall(r'href="/datasets/(\d+)/"', client.get(f"/datasets/?{older}").content.decode())
    ]
    assert rest == newest[50:]
    assert len(re.findall(r'href="/datasets/\d+/"', client.get("/datasets/?search=SET 1").content.decode())) == 10
    response = alice_api.get("/api/v1/datasets?limit=50")
    assert [d["id"] for d in response.json()] == newest[:50] and 'rel="next"' in response.headers["Link"]
    assert "Link" not in alice_api.get("/api/v1/datasets").headers  # 53 fit in the default page of 100
