"""Formats to arrays, no network knowledge beyond byte ranges: the format table (MRC, TIFF), lazy arrays,
STAR, cryoSPARC, SerialEM mdoc."""

from perc_platform.io.cryosparc import cs_particle_metadata as cs_particle_metadata
from perc_platform.io.cryosparc import read_cs as read_cs
from perc_platform.io.formats import FORMATS as FORMATS
from perc_platform.io.formats import Format as Format
from perc_platform.io.formats import format_for as format_for
from perc_platform.io.formats import open_image_file as open_image_file
from perc_platform.io.formats import open_image_files as open_image_files
from perc_platform.io.layout import ImageFile as ImageFile
from perc_platform.io.layout import RawLayout as RawLayout
from perc_platform.io.layout import SegmentLayout as SegmentLayout
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
from perc_platform.io.mrc_writer import MrcStackWriter as MrcStackWriter
from perc_platform.io.mrc_writer import create_stack as create_stack
from perc_platform.io.mrc_writer import write_stack as write_stack
from perc_platform.io.mrc_writer import write_volume as write_volume
from perc_platform.io.stack_array import StackArray as StackArray
from perc_platform.io.star import StarTable as StarTable
from perc_platform.io.star import particle_metadata as particle_metadata
from perc_platform.io.star import read_star as read_star
from perc_platform.io.star_writer import format_star as format_star
from perc_platform.io.star_writer import write_star as write_star
from perc_platform.io.tiff_file import TiffImageFile as TiffImageFile
from perc_platform.io.tiff_file import open_tiff_file as open_tiff_file

__all__ = [
           "FORMATS",
           "MODE_DTYPES",
           "Format",
           "ImageFile",
           "MdocFile",
           "MrcFile",
           "MrcHeader",
           "MrcStackArray",
           "MrcStackWriter",
           "MrcVolumeArray",
           "RawLayout",
           "SegmentLayout",
           "StackArray",
           "StarTable",
           "TiffImageFile",
           "create_stack",
           "cs_particle_metadata",
           "format_for",
           "format_star",
           "open_image_file",
           "open_image_files",
           "open_mrc_file",
           "open_mrc_files",
           "open_tiff_file",
           "parse_header",
           "particle_metadata",
           "read_cs",
           "read_mdoc",
           "read_star",
           "write_stack",
           "write_star",
           "write_volume",
]
