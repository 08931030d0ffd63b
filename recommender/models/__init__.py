"""Recommendation models: popularity and trending, ALS, BPR, item neighbours, EASE, co-visit, blend.

One model family per module behind :class:`Recommender` (``base``); importing this package
imports every family, so :func:`load_model` knows every saved ``kind``.
"""

from recommender.models.als import ALSModel, ALSParams
from recommender.models.base import (
    FORMAT_VERSION,
    MODEL_KINDS,
    ModelNotReady,
    Recommender,
    load_model,
    model_metadata,
    top_n,
    widen_square,
)
from recommender.models.blend import BlendModel, BlendParams, normalise_scores
from recommender.models.bpr import BPRModel, BPRParams
from recommender.models.covisit import (
    CoVisitModel,
    CoVisitParams,
    covisit_counts,
    keep_top_per_row,
    time_ordered,
)
from recommender.models.ease import EASEModel, EASEParams
from recommender.models.factors import CustomersLikeYou, FactorModel
from recommender.models.item_knn import ItemKNNModel, ItemKNNParams
from recommender.models.popularity import PopularityModel, PopularityParams

__all__ = [
    "FORMAT_VERSION",
    "MODEL_KINDS",
    "ALSModel",
    "ALSParams",
    "BPRModel",
    "BPRParams",
    "BlendModel",
    "BlendParams",
    "CoVisitModel",
    "CoVisitParams",
    "CustomersLikeYou",
    "EASEModel",
    "EASEParams",
    "FactorModel",
    "ItemKNNModel",
    "ItemKNNParams",
    "ModelNotReady",
    "PopularityModel",
    "PopularityParams",
    "Recommender",
    "covisit_counts",
    "keep_top_per_row",
    "load_model",
    "model_metadata",
    "normalise_scores",
    "time_ordered",
    "top_n",
    "widen_square",
]
