"""
A cluster of workers: membership, assignment of computations, leader
election and fencing, written once over a small coordinator interface
(:class:`~pyrf_blocks.interfaces.ICoordinator`) that etcd provides across
hosts and :class:`~pyrf_blocks.cluster.memory.InProcessCoordinator` inside
one process.
"""

__all__ = ["coordinator"]


def coordinator(url, reactor, ca=None):
    """
    The coordinator a URL names: ``http://host:2379`` (or ``https://``) is an
    etcd cluster's client URL; ``memory:`` the in-process coordinator.

    :param ca: for ``https://``, the CA certificate file etcd's certificate
        must be signed by (the system's authorities by default).
    """
    if url == "memory:":
        from .memory import InProcessCoordinator
        return InProcessCoordinator(reactor)
    if url.startswith(("http://", "https://")):
        from .etcd import EtcdCoordinator
        return EtcdCoordinator(url, reactor, ca=ca)
    raise ValueError(f"a coordinator URL is http(s)://HOST:PORT of etcd or 'memory:', not {url!r}")
