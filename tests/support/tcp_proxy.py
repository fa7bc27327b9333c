"""The harness's TCP proxy (harness/tcp_proxy.py), under the name the tests import it by."""

from harness.tcp_proxy import TcpProxy, proxy_to, through

__all__ = ["TcpProxy", "proxy_to", "through"]
