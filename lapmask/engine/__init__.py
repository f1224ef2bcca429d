"""Engine: trainer, checkpoints and the COCO evaluator.

Nothing is imported eagerly: ``lapmask.engine.evaluator`` is numpy + pycocotools only and must stay importable
without torch.
"""
