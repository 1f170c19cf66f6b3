"""fsspec access: byte ranges with length checks, the atomic cache, the one network policy."""

from perc_platform.storage.cache import atomic_write as atomic_write
from perc_platform.storage.cache import cache_dir as cache_dir
from perc_platform.storage.cache import cache_path_for_url as cache_path_for_url
from perc_platform.storage.cache import entry_lock as entry_lock
from perc_platform.storage.policy import check_url as check_url
from perc_platform.storage.policy import grant_host as grant_host
from perc_platform.storage.ranges import decompressed_copy as decompressed_copy
from perc_platform.storage.ranges import file_size as file_size
from perc_platform.storage.ranges import is_remote as is_remote
from perc_platform.storage.ranges import local_copy as local_copy
from perc_platform.storage.ranges import local_path as local_path
from perc_platform.storage.ranges import open_input as open_input
from perc_platform.storage.ranges import read_bytes as read_bytes
from perc_platform.storage.ranges import read_ranges_into as read_ranges_into

__all__ = [
           "atomic_write",
           "cache_dir",
           "cache_path_for_url",
           "check_url",
           "decompressed_copy",
           "entry_lock",
           "file_size",
           "grant_host",
           "is_remote",
           "local_copy",
           "local_path",
           "open_input",
           "read_bytes",
           "read_ranges_into",
]
