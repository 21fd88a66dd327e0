"""slamp: SLAMP (Stochastic Latent Appearance and Motion Prediction, Akan et al., ICCV 2021).

The modules are exported from the notebooks in ``notebooks/`` (see the README):
``slamp.losses`` (00_elbo: reparameterisation, Gaussian KL, the L2 and KL reductions),
``slamp.warp`` and ``slamp.viz`` (01_flow_warping), ``slamp.data`` (02_data: Stochastic Moving
MNIST and the real-dataset loaders), ``slamp.nn``, ``slamp.models`` and ``slamp.toy``
(03_slamp_baseline, 04_slamp: SVG, SLAMP-Baseline, SLAMP). ``slamp.train`` (05_training), ``slamp.metrics`` and
``slamp.evaluate`` (06_evaluation), ``slamp.latents`` (07_latents: t-SNE and k-NN/silhouette of the
latents, an explorer that redraws one latent stream at a time; its figures join ``slamp.viz``).
``slamp.pretrained`` loads the shipped models; ``slamp.cli`` is
the command line (``slamp demo|train|evaluate``, ``python -m slamp ...``).
"""
__version__ = "0.1.0"
