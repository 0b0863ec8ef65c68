"""The networks: pure nn.Modules, no I/O.

Submodules: ``stylegan2`` (generator and discriminator), ``flow`` (conditional
normalizing flow mapper), ``cvae_mapper`` (the paper's CVAE mapper),
``baselines`` (image CVAE and conditional GAN), ``classifier`` (attribute CNN).
"""
