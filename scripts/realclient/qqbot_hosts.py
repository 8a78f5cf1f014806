# Runs pandolia/qqbot (a SmartQQ client of 2017-2018, from a checkout given on the
# command line) against qqsim, changing nothing in the client but where its host names
# lead: every request for a *.qq.com host goes to qqsim over plain http on loopback,
# with the Host header, Referer, Origin, cookies and body exactly as the client made
# them (like a hosts file plus a TLS-terminating proxy). Requests for any other host
# are refused, so the client never leaves the machine.
#
# usage: python3 qqbot_hosts.py CHECKOUT SIM_URL BENCH_DIR PLUGIN_DIR
import os
import sys
from urllib.parse import urlsplit, urlunsplit

checkout, sim_url, bench, plugin_dir = sys.argv[1:5]
sys.path.insert(0, os.path.abspath(checkout))

import requests  # noqa: E402  (Debian's python3-requests)
from requests.adapters import HTTPAdapter  # noqa: E402

SIM = urlsplit(sim_url)
if SIM.hostname not in ("127.0.0.1", "::1", "localhost"):
    sys.exit("qqbot_hosts: qqsim must be on loopback, got " + sim_url)


class ToSim(HTTPAdapter):
    """Sends requests for *.qq.com to qqsim; refuses every other host."""

    def send(self, request, **kwargs):
        u = urlsplit(request.url)
        host = (u.hostname or "").lower()
        if not (host == "qq.com" or host.endswith(".qq.com")):
            raise requests.ConnectionError("qqbot_hosts: refusing a request for " + host)
        original = request.url
        request.headers["Host"] = host
        request.url = urlunsplit(("http", SIM.netloc, u.path or "/", u.query, ""))
        try:
            resp = super().send(request, **kwargs)
        finally:
            request.url = original
        resp.url = original  # cookies and redirects see the name the client used
        return resp


_init = requests.Session.__init__


def _session_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.mount("http://", ToSim())
    self.mount("https://", ToSim())


requests.Session.__init__ = _session_init

# The Python of the client's era: HTMLParser.unescape went away in Python 3.9; the
# client calls it at import time. This puts back the standard library's function under
# the old name (an interpreter shim, not a change to the client).
import html  # noqa: E402
import html.parser  # noqa: E402

if not hasattr(html.parser.HTMLParser, "unescape"):
    html.parser.HTMLParser.unescape = lambda self, s: html.unescape(s)

from qqbot import _bot as bot  # noqa: E402

# The client's own entry point, without its restart supervisor (which re-executes
# sys.argv): log in, then run the main loop.
argv = ["-b", bench, "-p", "0", "-nr", "-pp", plugin_dir, "-pl", "qqsim_reply", "-d"]
try:
    bot.Login(argv)
    bot.Run()
finally:
    if hasattr(bot, "conf"):
        bot.conf.StoreQQ()
