"""The recall rules one at a time: context-aware names (lower case after a cue, name lines, speaker
labels, lists, titles), international streets and postal blocks, postcodes after a country, towns after
a cue, phone forms and licence plates — each with the look-alikes it must leave alone."""
from __future__ import annotations

import pytest

from services.compliance.core.phi.base import RuleRecognizer
from services.compliance.core.phi.contact import PhoneFaxRecognizer
from services.compliance.core.phi.gazetteers import (
    CountryPostcodeRecognizer,
    LowerCaseNameRecognizer,
    NameLineRecognizer,
    NameListRecognizer,
    SpeakerLabelRecognizer,
)
from services.compliance.core.phi.geography import (
    AddressLabelRecognizer,
    CuedPlaceRecognizer,
    EuropeanStreetRecognizer,
    PostalBlockRecognizer,
    StreetAddressRecognizer,
)
from services.compliance.core.phi.identifiers import LabelledIdentifierRecognizer
from services.compliance.core.phi.names import CuedNameRecognizer, SubjectNameRecognizer, TitledNameRecognizer
from services.compliance.core.phi.vocabulary import everyday_word, ordinary_word


def found(recognizer_class, text: str) -> list[str]:
    recognizer = recognizer_class()
    recognizer.load()
    return sorted({text[r.start:r.end] for r in recognizer.analyze(text, [])})


CASES = [
    # (recognizer, text, the spans it must report exactly)
    (LowerCaseNameRecognizer, "my name is vitoria", ["vitoria"]),
    (LowerCaseNameRecognizer, "my name is borna jerković but everyone calls me borna", ["borna", "borna jerković"]),
    (LowerCaseNameRecognizer, "follow up with patricia desrosiers in a couple of months.",
     ["patricia", "patricia desrosiers"]),
    (LowerCaseNameRecognizer, "follow up with benjamin a seiler soon", ["benjamin", "benjamin a seiler"]),
    (NameLineRecognizer, "naomi ryan\nsewer pipe cleaner", ["naomi ryan"]),
    (NameLineRecognizer, "??? Astrid Björgvinsdóttir\n??? Lawdragon", ["Astrid Björgvinsdóttir"]),
    (NameLineRecognizer, "Karin M. Beike\nLeasing consultant", ["Karin M. Beike"]),
    (SpeakerLabelRecognizer, "Ubul: What a wife.\nNicole: Remember me?", ["Nicole", "Ubul"]),
    (NameListRecognizer, "Our founders: Monjeau, Barrett and Reed.", ["Barrett", "Monjeau", "Reed"]),
    (CountryPostcodeRecognizer, "Suite 292\nZuoz\nSwitzerland 53730", ["53730"]),
    (CountryPostcodeRecognizer, "Apt. 658\nCyprus (Greek) 25572", ["25572"]),
    (CountryPostcodeRecognizer, "apt. 169\nmarke\nbelgium 97466", ["97466"]),
    (CuedPlaceRecognizer, "I'm Naomi Ryan, originally from ΕΓΚΩΜΗ, and i'm 31.", ["ΕΓΚΩΜΗ"]),
    (CuedPlaceRecognizer, "Patient moved to East Feliciamouth in 1977.", ["East Feliciamouth"]),
    (CuedPlaceRecognizer, "The Princess Royal arrived at Khandallah this morning.", ["Khandallah"]),
    (EuropeanStreetRecognizer, "I live at Beckmannplatz 74/37\n07532 Seelow.", ["Beckmannplatz 74/37\n07532 Seelow"]),
    (EuropeanStreetRecognizer, "Ship it to 48, rue Jacob\n38122 Legros, please.", ["48, rue Jacob\n38122 Legros"]),
    (EuropeanStreetRecognizer, "Piazza Giacobbe, 62\n17054, Boissano (SV)\nThank you.",
     ["Piazza Giacobbe, 62\n17054, Boissano (SV)"]),
    (EuropeanStreetRecognizer, "pedestrians must enter on hegyalja út 98. first", ["hegyalja út 98."]),
    (EuropeanStreetRecognizer, "The clinic is at al. Chopina 00\n27-793 Stargard Szczeciński.",
     ["al. Chopina 00\n27-793 Stargard Szczeciński"]),
    (PostalBlockRecognizer, "Ship it to Zálesí 14\n551 45 Morkovice-Slížany, please.",
     ["Zálesí 14\n551 45 Morkovice-Slížany"]),
    (PostalBlockRecognizer, "The clinic is located at Kristoffersenhavna 2, 7368 Karifjord.",
     ["Kristoffersenhavna 2, 7368 Karifjord"]),
    (PostalBlockRecognizer, "I live at 49 Caitlin Towers\nCameronstad, SA, 2915.",
     ["49 Caitlin Towers\nCameronstad, SA, 2915"]),
    (StreetAddressRecognizer, "Please update it to 27534 Þorsteinsgata 63\nMOSS\n, nan\n 51971 for this card",
     ["27534 Þorsteinsgata 63\nMOSS\n, nan\n 51971"]),
    (StreetAddressRecognizer, "??? 66029 138 Consul Place\n??? Apt. 050\n??? Broomfield\n??? New Zealand 57006",
     ["66029 138 Consul Place\n??? Apt. 050\n??? Broomfield\n??? New Zealand 57006",
      "Apt. 050\n??? Broomfield\n??? New Zealand 57006"]),
    (StreetAddressRecognizer, "Send the invoice to\n54 Booth Ferry\nJonesburgh\nM0 6AX\nThank you.",
     ["54 Booth Ferry\nJonesburgh\nM0 6AX"]),
    (StreetAddressRecognizer, "3747 3911 fourth avenue suite 112", ["3747 3911 fourth avenue suite 112"]),
    (EuropeanStreetRecognizer, "The office is at Růžena and Király u. 15.", ["Růžena and Király u. 15."]),
    (PhoneFaxRecognizer, "no message on my registered 668 5702. Or call 555-0123.", ["555-0123", "668 5702"]),
    (AddressLabelRecognizer, "here they are: the corner of ul. Grochowa 80 and Lahtinen Road, and more",
     ["the corner of ul. Grochowa 80 and Lahtinen Road"]),
    (TitledNameRecognizer, "For my take on Dr. Wells, see the list.", ["Wells"]),
    (TitledNameRecognizer, "I'd like to join accounts with ms. Quinzia", ["Quinzia"]),
    (CuedNameRecognizer, "Telehealth visit 9/19/77 with Oskloqua Oskbru via https://x.example/", ["Oskloqua Oskbru"]),
    (SubjectNameRecognizer, "Tomomi is from Hawkins, Richardson and Santana", ["Tomomi"]),
    (SubjectNameRecognizer, "Warrane, can I please speak to your boss?", ["Warrane"]),
    (PhoneFaxRecognizer, "My number is 54752772.", ["54752772"]),
    (PhoneFaxRecognizer, "457-3681 is my cell.", ["457-3681"]),
    (PhoneFaxRecognizer, "You can text me on +441154960200", ["+441154960200"]),
    (PhoneFaxRecognizer, "Or try (+30) 2220 033224 instead", ["(+30) 2220 033224"]),
    (LabelledIdentifierRecognizer, "by car (license plate 589 LN8) after", ["589 LN8"]),
]


@pytest.mark.parametrize("recognizer_class,text,expected", CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_finds(recognizer_class, text, expected):
    assert found(recognizer_class, text) == expected


LOOK_ALIKES = [
    # (recognizer, text that holds nothing it may report)
    (LowerCaseNameRecognizer, "i am fine. my name is not important. call me when ready. i'm tired today."),
    (LowerCaseNameRecognizer, "her daughter will call back; spoke with nursing about it"),
    (NameLineRecognizer, "Discharge Summary\nHospital Course\nMedication List\nFollow up in 2 weeks"),
    (NameLineRecognizer, "Metoprolol Tartrate\nLocal transit bus driver"),
    (SpeakerLabelRecognizer, "Mother: hypertension.\nFather: MI at 55.\nPlan: continue."),
    (SpeakerLabelRecognizer, "Nurse: Patient is resting.\nDoctor: Continue current plan."),
    (NameListRecognizer, "Started Metformin, Lisinopril and Atorvastatin. Discussed with Cardiology and Surgery."),
    (NameListRecognizer, "Allergies: Penicillin, Sulfa and Codeine."),
    (CountryPostcodeRecognizer, "Labs 2019 1234 normal, Troponin 0.02, Room 1234, order 55555."),
    (CuedPlaceRecognizer, "Pt transferred to ICU. Returned to Clinic after lunch. Went to Physical Therapy."),
    (CuedPlaceRecognizer, "She moved to Assisted Living last year. Came from Home. Back to Baseline."),
    (EuropeanStreetRecognizer, "Metformin 500 mg twice daily, Type 2 diabetes, Room 12, bed 4, Grade 1 injury."),
    (EuropeanStreetRecognizer, "He wore a bow tie 2 days ago; the ring 3 fit. Daniela 5 years old."),
    (StreetAddressRecognizer, "Take Metformin and Lisinopril; Tylenol and 12 Units of insulin."),
    (PostalBlockRecognizer, "Ward 5B, Bed 12, 1200 Hours. Aspirin 81, 2 Tabs daily."),
    (PostalBlockRecognizer, "Insulin Glargine 20\n5 Units at bedtime\nVitamin D 50000 Units weekly\n12 Weeks total"),
    (StreetAddressRecognizer, "Take 2 tablets by mouth. Walked 2 blocks down the street before chest pain."),
    (StreetAddressRecognizer, "Blood Pressure 140 90 Sitting. Mammogram 2023 BIRADS 2. Bed 2\nNurse Station 5"),
    (AddressLabelRecognizer, "Lesion at the corner of the mouth and at the corner of the eye."),
    (TitledNameRecognizer, "Nurse Practitioner visit; Dr. Note to follow."),
    (CuedNameRecognizer, "Follow up with Cardiology in 2 weeks. Visit with Physical Therapy scheduled."),
    (SubjectNameRecognizer, "Okay, can you repeat the dose? Sorry, could you call back? Husband lives nearby."),
    (PhoneFaxRecognizer, "Call on 2024-05-02 about the 03/14/2024 results; BP 128/82, pain 5/10, Room 12."),
    (LabelledIdentifierRecognizer, "Plate count normal; tag along to the visit."),
]


@pytest.mark.parametrize("recognizer_class,text", LOOK_ALIKES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(LOOK_ALIKES)])
def test_leaves_look_alikes(recognizer_class, text):
    assert found(recognizer_class, text) == []


def test_everyday_words_include_inflections_and_clinical_words_only_for_ordinary():
    assert everyday_word("Called") and everyday_word("Sorry") and everyday_word("Mobile")
    assert not everyday_word("Tomomi") and not everyday_word("Metformin")
    assert ordinary_word("Metformin") and ordinary_word("Parkinson")


def test_a_gated_rule_is_skipped_when_its_gate_is_absent():
    recognizer = EuropeanStreetRecognizer()
    assert any(rule.gate is not None for rule in recognizer.RULES)
    assert found(EuropeanStreetRecognizer, "Villacher Strasse 89") == ["Villacher Strasse 89"]
    assert isinstance(recognizer, RuleRecognizer)


def redacted(deidentifier, text: str) -> list[tuple[str, str]]:
    from services.compliance.core.deidentify import RedactionPolicy, resolve_overlaps

    policy = RedactionPolicy()
    (entities,) = deidentifier.analyze([text])
    return [(e.entity_type, text[e.start:e.end]) for e in resolve_overlaps([e for e in entities
                                                                            if policy.applies_to(e)])]


def covered(deidentifier, text: str, value: str) -> bool:
    """Every letter and digit of value (where it first occurs) lies in a redacted span."""
    from services.compliance.core.deidentify import RedactionPolicy, resolve_overlaps

    policy = RedactionPolicy()
    (entities,) = deidentifier.analyze([text])
    spans = resolve_overlaps([e for e in entities if policy.applies_to(e)])
    start = text.index(value)
    return all(any(e.start <= i < e.end for e in spans) for i in range(start, start + len(value))
               if text[i].isalnum())


WHOLE_VALUES = [
    # (text, the PHI value that must be redacted whole) — with spaCy's tags and entities.
    ("Maybe it's under Elita B Desaulniers", "Elita B Desaulniers"),  # a known given name + unknown surname
    ("Ubul Csonka listed his top 20 songs", "Ubul Csonka"),  # an unknown given name before a known surname
    ("Ella: What a wife.\nDestiny: Remember me?", "Ella"),  # a known name the tagger calls a noun
    ("they were singing the verses from Faina D. Yefremova's Cautionary Tales", "Faina D. Yefremova"),  # ORG
    ("Wisława Szczepańska's killers sentenced to life in prison", "Wisława Szczepańska"),
    ("I'd like to call a taxi to 6889 ul. Jarzębinowa 5\nBUNDALAGUAH\n, VIC\n Australia 38837.",
     "6889 ul. Jarzębinowa 5\nBUNDALAGUAH\n, VIC\n Australia 38837"),
    ("Send the invoice to\nDejvická 432\n440 56 Šluknov\nThank you.", "Dejvická 432\n440 56 Šluknov"),
]


@pytest.mark.parametrize("text,value", WHOLE_VALUES)
def test_whole_value_is_redacted(presidio_deidentifier, text, value):
    assert covered(presidio_deidentifier, text, value), redacted(presidio_deidentifier, text)


CLINICAL_LOOK_ALIKES = [
    "Plan: continue Metformin, Lisinopril and Atorvastatin. Follow up with Cardiology in 2 weeks.",
    "Patient lives alone. Husband lives nearby. She lives with her daughter.",
    "Mother: hypertension.\nFather: MI at 55.\nSister: breast cancer.",
    "Okay, can you repeat the dose? Sorry, could you call back later? Well, do you have pain?",
    "Lesion at the corner of the mouth and a small one at the corner of the eye.",
    "Take 2 tablets by mouth twice daily. Walked 2 blocks down the street before chest pain.",
    "BP 120 80 Standing, HR 72. Pain 5 10 Severe at times. Blood Pressure 140 90 Sitting.",
    "Visit with Physical Therapy scheduled. Follow-up with Endocrinology and Nephrology.",
    "Labs:\nNa 138\nK 4.1\nCreatinine 1.2\nHeparin Drip 1000 Units\n12 Hours later aPTT 65",
    "Started Entresto 24/26 mg BID and Jardiance 10 mg daily. Vitamin D 50000 Units weekly\n12 Weeks total",
    "Follow Up 2 Weeks\nReturn Precautions 3\nTanner Stage 3. Mallampati Class 2. Grade 3 Murmur.",
    "i am fine. my name is not important. call me when ready. i'm tired today.",
    "Went to Physical Therapy twice. Transferred to ICU, then returned to Clinic.",
]


@pytest.mark.parametrize("text", CLINICAL_LOOK_ALIKES)
def test_clinical_look_alikes_survive(presidio_deidentifier, text):
    assert redacted(presidio_deidentifier, text) == []


def test_an_eponym_after_a_title_is_a_name_but_not_spread_to_the_disease(presidio_deidentifier):
    text = "Dr. Parkinson saw the patient for Parkinson disease."
    assert redacted(presidio_deidentifier, text) == [("PERSON", "Parkinson")]
    (entities,) = presidio_deidentifier.analyze([text])
    assert {(e.start, e.end) for e in entities if e.score >= 0.35} == {(4, 13)}  # "Dr. [Parkinson] saw"


def test_a_town_that_is_a_field_label_or_an_everyday_word_is_not_a_place(presidio_deidentifier):
    text = "Mobile: 0341 8387176\nDesk: +41 (0)85 123 45 67"
    assert [t for t, _ in redacted(presidio_deidentifier, text)] == ["PHONE_NUMBER", "PHONE_NUMBER"]


def test_a_labelled_number_still_spreads_to_its_bare_repeats(presidio_deidentifier):
    text = "MRN: 00123456. Chart 00123456 reviewed."
    assert [value for _, value in redacted(presidio_deidentifier, text)] == ["00123456", "00123456"]
