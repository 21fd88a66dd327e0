"""slamp: SLAMP (Stochastic Latent Appearance and Motion Prediction, Akan et al., ICCV 2021).

The modules are exported from the notebooks in ``notebooks/`` (see the README): ``slamp.warp``
(backward warping by optical flow), ``slamp.viz`` (flow colours, image rows, GIFs). ``slamp.cli``
is the command line (``slamp demo``, ``python -m slamp demo``).
"""
__version__ = "0.1.0"
