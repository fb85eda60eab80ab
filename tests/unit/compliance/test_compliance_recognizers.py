"""Every HIPAA category's recognizers with the real analyzer: what must be caught, and look-alikes
that must survive (room numbers, doses, "Type 2", lab values, ICD-10 codes, years, young ages)."""
from __future__ import annotations

import pytest

from services.compliance.core.deidentify import RedactionPolicy, resolve_overlaps
from services.compliance.core.phi.categories import category_of

POSITIVES = {
    "NAME": ["Patient: Quaren Tesdar was admitted.", "Seen by Dr. Okafor today.", "Her daughter, Lina Voss, called.",
             "Signed: Alice Walker, MD"],
    "GEOGRAPHY": ["Lives at 1234 N. Oak Street, Apt 5, Springfield, IL 62704.", "Address: 500 Elm Avenue",
                  "Mail to P.O. Box 287 please.", "ZIP: 02118"],
    "DATE": ["DOB 03/14/1962.", "Born March 14, 1962.", "Admitted 14-Mar-62.", "Discharged 2024-05-02 12:20:39."],
    "AGE_OVER_89": ["A 92-year-old woman.", "Patient aged 95 presents.", "He is 101 yo."],
    "PHONE_FAX": ["Call (617) 555-0123.", "Fax: 0490 75 40 81", "Mobile +41 (0)96 471 07 95"],
    "EMAIL": ["Email jane.roe@example.org today."],
    "SSN": ["SSN 123-45-6789 (sample-looking, still redacted).", "SSN: 536-22-8145"],
    "MRN": ["MRN: 00123456", "Medical record number 4471-2209", "Patient ID: PX-88231"],
    "HEALTH_PLAN": ["Member ID W123456789", "Medicare beneficiary number 1EG4-TE5-MK72"],
    "ACCOUNT": ["Acct #4471-220931", "Account number 0012345678"],
    "LICENSE": ["DEA AB1234563", "NPI 1234567893", "Driver's license D1234567", "License no. MD445566"],
    "VEHICLE": ["VIN 1HGCM82633A004352", "License plate 7ABC123"],
    "DEVICE": ["UDI (01)00643169007222(17)160128(21)BLC200461H", "Serial number PM4471923"],
    "URL": ["Results at https://portal.clinic.biz/results/77"],
    "IP_ADDRESS": ["Login from 192.168.10.24"],
    "OTHER_ID": ["Encounter #EN-88231", "Ref No. 55-1290", "Claim number CL-998877"],
    "FACILITY": ["Transferred to St. Mary's Hospital.", "Follow up at Lakeside Family Clinic."],
}
NEGATIVES = [
    "Room 12, bed 4.", "Metformin 500 mg twice daily.", "Type 2 diabetes, CKD stage 3.",
    "Labs: Na 138, K 4.1, Cr 1.1, HbA1c 7.2%, WBC 11.2.", "ICD-10 E11.9 and I10.", "BP 128/82, pain 5/10.",
    "Diagnosed in 2019.", "A 72-year-old man.", "Take 2 tablets every 6 hours.", "Hx of Parkinson's disease.",
    "Started lisinopril 10 mg.", "Grade 1 splenic injury, GCS 15.",
]


def redacted_spans(deidentifier, text: str):
    policy = RedactionPolicy()
    (found,) = deidentifier.analyze([text])
    return resolve_overlaps([e for e in found if policy.applies_to(e)])


@pytest.mark.parametrize("category,text", [(c, t) for c, texts in POSITIVES.items() for t in texts])
def test_each_category_is_caught(presidio_deidentifier, category, text):
    spans = redacted_spans(presidio_deidentifier, text)
    assert category in {category_of(e.entity_type) for e in spans}, [(e.entity_type, text[e.start:e.end])
                                                                      for e in spans]


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_survive(presidio_deidentifier, text):
    spans = redacted_spans(presidio_deidentifier, text)
    assert spans == [], [(e.entity_type, text[e.start:e.end]) for e in spans]


def test_a_found_name_is_redacted_wherever_it_appears_again(presidio_deidentifier):
    text = "Patient: Quaren Tesdar. Later Quaren asked about Tesdar family history."
    spans = redacted_spans(presidio_deidentifier, text)
    assert [text[e.start:e.end] for e in spans] == ["Quaren Tesdar", "Quaren", "Tesdar"]
