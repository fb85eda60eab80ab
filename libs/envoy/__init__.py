"""The Envoy edge: its bootstrap rendered from `EnvoySettings`, and how to launch the binary."""
from libs.envoy.config import DESCRIPTOR_PATH, render_config, write_config
from libs.envoy.process import envoy_binary, envoy_command

__all__ = ["DESCRIPTOR_PATH", "envoy_binary", "envoy_command", "render_config", "write_config"]
