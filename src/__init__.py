"""Model-zoo application layer: config merge, device/distributed setup, train/eval/export wiring.

``src`` imports ``tinynet_ms``; the library never imports ``src``.
"""
