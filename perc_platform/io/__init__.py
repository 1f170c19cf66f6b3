"""Formats to arrays, no network knowledge beyond byte ranges: MRC header and lazy arrays, STAR, cryoSPARC."""

from perc_platform.io.cryosparc import cs_particle_metadata as cs_particle_metadata
from perc_platform.io.cryosparc import read_cs as read_cs
from perc_platform.io.mdoc import MdocFile as MdocFile
from perc_platform.io.mdoc import read_mdoc as read_mdoc
from perc_platform.io.mrc_array import MrcFile as MrcFile
from perc_platform.io.mrc_array import MrcStackArray as MrcStackArray
from perc_platform.io.mrc_array import MrcVolumeArray as MrcVolumeArray
from perc_platform.io.mrc_file import open_mrc_file as open_mrc_file
from perc_platform.io.mrc_file import open_mrc_files as open_mrc_files
from perc_platform.io.mrc_header import MODE_DTYPES as MODE_DTYPES
from perc_platform.io.mrc_header import MrcHeader as MrcHeader
from perc_platform.io.mrc_header import parse_header as parse_header
from perc_platform.io.star import StarTable as StarTable
from perc_platform.io.star import particle_metadata as particle_metadata
from perc_platform.io.star import read_star as read_star
from perc_platform.io.star_writer import format_star as format_star
from perc_platform.io.star_writer import write_star as write_star

__all__ = [
           "MODE_DTYPES",
           "MdocFile",
           "MrcFile",
           "MrcHeader",
           "MrcStackArray",
           "MrcVolumeArray",
           "StarTable",
           "cs_particle_metadata",
           "format_star",
           "open_mrc_file",
           "open_mrc_files",
           "parse_header",
           "particle_metadata",
           "read_cs",
           "read_mdoc",
           "read_star",
           "write_star",
]
