"""Helpers for the browser tests (the `page` fixture is in conftest.py)."""

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def login(page, username):
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-" + username)
    page.click("button[type=submit]")
    page.wait_for_url("**/jobs/")


# How wide the chosen option's text is, in the select's own font, against the room the select gives it (its
# width less its padding and the arrow's ~20 px): a select narrower than its text cuts it off.
_SELECT_ROOM = """el => {
  const style = getComputedStyle(el);
  const context = document.createElement("canvas").getContext("2d");
  context.font = style.font;
  const text = el.options[el.selectedIndex].text;
  const room = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20;
  return {text, needed: context.measureText(text).width, room};
}"""


def assert_select_text_fits(locator):
    fit = locator.evaluate(_SELECT_ROOM)
    assert fit["needed"] <= fit["room"], (
        f"the select cuts off '{fit['text']}': {fit['needed']:.0f} px in {fit['room']:.0f}"
    )


def assert_below(upper, lower):
    """`lower` starts below `upper` ends: neither is drawn over the other."""
    top, bottom = upper.bounding_box(), lower.bounding_box()
    assert bottom["y"] >= top["y"] + top["height"] - 1, f"{top} overlaps {bottom}"
