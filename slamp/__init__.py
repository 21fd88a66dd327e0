"""slamp: SLAMP (Stochastic Latent Appearance and Motion Prediction, Akan et al., ICCV 2021).

What the paper says is exported from the notebooks in ``notebooks/`` (see the README):
``slamp.losses`` (00_elbo: reparameterisation, Gaussian KL, the L2 and KL reductions),
``slamp.warp`` and ``slamp.viz`` (01_flow_warping), ``slamp.data.moving_mnist`` (02_data:
Stochastic Moving MNIST and SRVP's test set), ``slamp.nn``, ``slamp.models`` and ``slamp.toy``
(03_slamp_baseline, 04_slamp: SVG, SLAMP-Baseline, SLAMP: one time step, `step`), ``slamp.train``
(05_training: one update, the loop, scheduled sampling), ``slamp.metrics`` and ``slamp.evaluate``
(06_evaluation), ``slamp.latents`` (07_latents; its figures join ``slamp.viz``).

The engine is plain Python: ``slamp.registry`` (one spec per dataset), ``slamp.model_registry``,
``slamp.guards`` (the models' input checks, BatchNorm's statistics kept from a NaN batch),
``slamp.kernels`` (the faster copy evaluation samples from), ``slamp.renamed`` (older names read), ``slamp.config`` (training
configs and presets), ``slamp.run`` (the run around the loop), ``slamp.checkpoint``,
``slamp.distributed``, ``slamp.runlog``, ``slamp.runtime`` (seeding and devices; imports nothing
heavy), ``slamp.data.stream`` and the recorded datasets' loaders in ``slamp.data``.
``slamp.pretrained`` loads the shipped models; ``slamp.cli`` is the command line
(``slamp demo|train|evaluate|prepare``, ``python -m slamp ...``).
"""
__version__ = "0.1.0"
