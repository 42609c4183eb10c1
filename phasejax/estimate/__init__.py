"""Estimating the local law of real keys (alpha, C) and diagnosing attention layers."""

from .models import HeadDiagnosis as HeadDiagnosis
from .models import diagnose_flax as diagnose_flax
from .models import extract_qk as extract_qk
from .tail import ScoreTailFit as ScoreTailFit
from .tail import TailFit as TailFit
from .tail import estimate_tail as estimate_tail
from .tail import fit_score_tail as fit_score_tail
from .tail import fit_tail as fit_tail
from .tail import hill_interval as hill_interval
from .tail import ks_exponential_pvalue as ks_exponential_pvalue
from .tail import pairwise_gaps as pairwise_gaps
from .tail import predict_beta_peak_from_scores as predict_beta_peak_from_scores
from .tail import smallest_gaps as smallest_gaps
from .tail import stability_pvalues as stability_pvalues
from .tail import trend_pvalue as trend_pvalue
