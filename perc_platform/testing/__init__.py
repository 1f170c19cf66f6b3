"""Shipped test helpers: the loopback archive server (real HTTP on 127.0.0.1) and data factories."""

from perc_platform.testing.factories import write_stack as write_stack
from perc_platform.testing.factories import write_star as write_star
from perc_platform.testing.factories import write_volume as write_volume
from perc_platform.testing.server import Fault as Fault
from perc_platform.testing.server import LoopbackServer as LoopbackServer
from perc_platform.testing.server import RequestRecord as RequestRecord
from perc_platform.testing.server import Response as Response

__all__ = ["Fault", "LoopbackServer", "RequestRecord", "Response", "write_stack", "write_star", "write_volume"]
