"""The campaign configuration: one typed schema (:mod:`.schema`) and its loader (:mod:`.load`)."""

from mtpkit.config.load import SCALES, build_config, dump_toml, load_config, scale_presets
from mtpkit.config.schema import PipelineConfig

__all__ = ["SCALES", "PipelineConfig", "build_config", "dump_toml", "load_config", "scale_presets"]
