"""PyTorch trainer for small spiking MLPs with SNN batch normalization (the ``[train]`` extra).

Modules: :mod:`train.data` (scikit-learn digits, fixed split), :mod:`train.modules` (LIF with
MPBN and the STE surrogate, the normalizers in torch), :mod:`train.loop` (training and
evaluation), :mod:`train.export` (to and from :class:`golden.network.Network`),
:mod:`train.ablation` (the normalizer ablation table).

Only this package imports torch; ``golden`` reads what it exports.
"""
