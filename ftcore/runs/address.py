"""The Ray cluster's address: where the app finds it, and which addresses the lab agrees to speak to.

Ray's dashboard and Jobs API run any code for anyone who can reach them. So the lab speaks only to a head on this
machine or a private network (loopback, RFC 1918, unique-local, link-local), unless the person serving it says
the head is protected ($FTCORE_RAY_ALLOW_REMOTE=1). Nothing here imports Ray or torch: a page can read the
address before either loads.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.parse

from ..errors import FtcoreError

ADDRESS_ENV = "FTCORE_RAY_ADDRESS"  # the cluster the app's runs go to: the head's dashboard, e.g. 10.0.0.5:8265
ALLOW_REMOTE_ENV = "FTCORE_RAY_ALLOW_REMOTE"  # "1": accept a head outside loopback and the private ranges
DASHBOARD_PORT = 8265  # Ray's default dashboard (and Jobs API) port


def cluster_address() -> str | None:
    """The address in $FTCORE_RAY_ADDRESS, as given (None when runs train on this machine)."""
    return os.environ.get(ADDRESS_ENV, "").strip() or None


def check_address(address: str, allow_remote: bool | None = None) -> str:
    """The head's dashboard URL for `address`; FtcoreError for a public head unless remote heads are allowed."""
    text = address.strip()
    if not text:
        raise FtcoreError("the Ray address is empty; give the head's address, e.g. 127.0.0.1:8265")
    if text.startswith("ray://"):
        raise FtcoreError(f"the Ray address {text} is a Ray Client address; the lab speaks to the head's dashboard "
                          f"(Jobs API), e.g. http://HEAD:{DASHBOARD_PORT}")
    parsed = urllib.parse.urlsplit(text if "://" in text else f"http://{text}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise FtcoreError(f"the Ray address {text} is not a host and port; give e.g. 127.0.0.1:{DASHBOARD_PORT}")
    if allow_remote is None:
        allow_remote = os.environ.get(ALLOW_REMOTE_ENV, "").strip() == "1"
    if not allow_remote:
        try:
            ips = {info[4][0] for info in socket.getaddrinfo(parsed.hostname, None)}
        except OSError:
            raise FtcoreError(f"the Ray head {parsed.hostname} cannot be found; check the address") from None
        public = sorted(ip for ip in ips if not _private(ip))
        if public:
            raise FtcoreError(
                f"the Ray head {parsed.hostname} ({public[0]}) is not on this machine or a private network, and "
                "Ray's dashboard runs any code for anyone who can reach it; bind the head to a private address, "
                f"or set {ALLOW_REMOTE_ENV}=1 if this one is protected (a VPN, a firewall)")
    port = parsed.port or DASHBOARD_PORT
    return f"{parsed.scheme}://{parsed.hostname}:{port}"


def _private(ip: str) -> bool:
    """True for loopback and private (RFC 1918, unique-local, link-local) addresses."""
    address = ipaddress.ip_address(ip.split("%")[0])
    return address.is_loopback or address.is_private or address.is_link_local
