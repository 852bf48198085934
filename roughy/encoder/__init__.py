"""The encoder: encode plan -> ffmpeg argv (pure), PyAV probing, one ffmpeg runner, and the
line protocol between `roughy-encode` and whoever runs it.

`roughy-encode` (`roughy.encoder.cli`) is both the embedded runtime's subprocess and the
Kubernetes Job's entrypoint. This package imports only `roughy.core` from the project, and its
`__init__` imports nothing: the pure Kubernetes builders read the protocol's exit codes without
loading PyAV.
"""
