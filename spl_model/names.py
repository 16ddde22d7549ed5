"""The model package's public vocabulary in one place, free of imports: engine names, window
strategies and precisions. The job config, the CLI and the Inpainter validate against these."""

CLASSICAL_ENGINES = ("opencv-telea", "opencv-ns")  # full-resolution OpenCV fills: no model
ENGINES = ("spl", *CLASSICAL_ENGINES)
STRATEGIES = ("crop", "resize")  # native-scale context windows per hole, or the whole image
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: bf16 on CUDA where supported, else fp32
