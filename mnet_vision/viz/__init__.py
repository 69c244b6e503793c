"""Pictures for people, one module per task family, all written as PNGs.

:mod:`~mnet_vision.viz.figure` saves a matplotlib figure; :mod:`~mnet_vision.viz.classification`
(confusion matrix), :mod:`~mnet_vision.viz.detection` (boxes on images),
:mod:`~mnet_vision.viz.verification` (ROC curves, face-search grid), :mod:`~mnet_vision.viz.attributes`
(AP per attribute) and :mod:`~mnet_vision.viz.geo` (partition and geolocation maps, distance curve)
draw. Nothing here imports Lightning, so inference tools draw without it. The package init imports
nothing: import each name from the module that defines it.
"""
