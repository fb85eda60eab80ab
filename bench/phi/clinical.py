"""A clinical note set the project generates itself: note templates with slots for every HIPAA
identifier, filled by generators (Faker for people and places, our own for the medical numbers),
with look-alikes that must survive ("Room 12", "500 mg", "Type 2", lab values, ICD-10 codes): those are
marked `[[...]]` in the templates, and the share left intact is the set's clinical-content utility.

Half the people get invented names (syllables no name list holds), so names are also found by
context, not only by dictionary. Deterministic for a seed; templates split by id like the shared set.
"""
from __future__ import annotations

import random
import re
import string
from collections.abc import Callable

from faker import Faker

from bench.phi.scoring import Sample, Span
from services.compliance.core.phi.identifiers import vin_check_digit

Generator = Callable[[random.Random, Faker], str]
CLINICAL_CONTENT = "CLINICAL"
_SYLLABLES = ("ka", "lo", "mi", "ren", "dar", "vo", "tes", "shi", "bru", "nel", "qua", "zor", "fen", "ilo", "mar",
              "tav", "osk", "ul", "yen", "pra", "gwi", "eth", "nob", "ras")


def _invented_word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def person(rng: random.Random, fake: Faker) -> str:
    if rng.random() < 0.5:
        return f"{_invented_word(rng)} {_invented_word(rng)}"
    return rng.choice([fake.name(), f"{fake.first_name()} {fake.last_name()}",
                       f"{fake.first_name()} {fake.random_uppercase_letter()}. {fake.last_name()}"])


def surname(rng: random.Random, fake: Faker) -> str:
    return _invented_word(rng) if rng.random() < 0.5 else fake.last_name()


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def date(rng: random.Random, fake: Faker) -> str:
    d = fake.date_between(start_date="-90y", end_date="today")
    return rng.choice([d.strftime("%m/%d/%Y"), d.strftime("%B %d, %Y"), d.strftime("%d-%b-%y"), d.isoformat(),
                       d.strftime("%b %d, %Y"), f"{d.day} {d.strftime('%B %Y')}", d.strftime("%-m/%-d/%y"),
                       d.strftime("%B %Y")])


def ssn(rng: random.Random, fake: Faker) -> str:
    return rng.choice([fake.ssn(), "123-45-6789", f"{_digits(rng, 3)}-{_digits(rng, 2)}-{_digits(rng, 4)}",
                       f"{_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 4)}"])


def dea(rng: random.Random, fake: Faker) -> str:
    prefix = rng.choice("ABFGMPR") + rng.choice(string.ascii_uppercase)
    d = [rng.randint(0, 9) for _ in range(6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    return prefix + "".join(map(str, d)) + str(check)


def npi(rng: random.Random, fake: Faker) -> str:
    body = "1" + _digits(rng, 8)
    for check in range(10):
        candidate = body + str(check)
        total = 0
        for i, c in enumerate(reversed("80840" + candidate)):
            n = int(c) * (2 if i % 2 else 1)
            total += n - 9 if n > 9 else n
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def vin(rng: random.Random, fake: Faker) -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    chars = [rng.choice(alphabet) for _ in range(17)]
    chars[8] = "0"
    chars[8] = vin_check_digit("".join(chars))
    return "".join(chars)


def plate(rng: random.Random, fake: Faker) -> str:
    return rng.choice([fake.license_plate(), f"{_digits(rng, 1)}{''.join(rng.choices(string.ascii_uppercase, k=3))}"
                       f"{_digits(rng, 3)}"])


def udi(rng: random.Random, fake: Faker) -> str:
    return f"(01){_digits(rng, 14)}(17){_digits(rng, 6)}(21){rng.choice(string.ascii_uppercase)}{_digits(rng, 6)}"


def serial(rng: random.Random, fake: Faker) -> str:
    return f"{''.join(rng.choices(string.ascii_uppercase, k=rng.randint(2, 3)))}{_digits(rng, rng.randint(5, 8))}"


def mrn(rng: random.Random, fake: Faker) -> str:
    return rng.choice([_digits(rng, 8), f"MR{_digits(rng, 7)}", f"{_digits(rng, 3)}-{_digits(rng, 3)}-{_digits(rng, 3)}"])  # noqa: E501


def plan_id(rng: random.Random, fake: Faker) -> str:
    return rng.choice([f"{rng.choice('WXYZ')}{_digits(rng, 9)}", f"{_digits(rng, 1)}{rng.choice('EGKT')}"
                       f"{rng.choice('ACDE')}{_digits(rng, 1)}-{rng.choice('EGKT')}{_digits(rng, 2)}-"
                       f"{rng.choice('ACDE')}{_digits(rng, 2)}", f"{''.join(rng.choices(string.ascii_uppercase, k=3))}"
                       f"{_digits(rng, 8)}"])


def account(rng: random.Random, fake: Faker) -> str:
    return rng.choice([_digits(rng, 10), f"{_digits(rng, 4)}-{_digits(rng, 6)}", fake.bban()])


def license_no(rng: random.Random, fake: Faker) -> str:
    return rng.choice([f"{rng.choice(string.ascii_uppercase)}{_digits(rng, 7)}", f"MD{_digits(rng, 6)}",
                       f"{_digits(rng, 2)}-{_digits(rng, 6)}"])


def age_over_89(rng: random.Random, fake: Faker) -> str:
    return str(rng.randint(90, 104))


def hospital(rng: random.Random, fake: Faker) -> str:
    return rng.choice([f"{fake.last_name()} Memorial Hospital", f"St. {fake.first_name()}'s Hospital",
                       f"{fake.city()} Medical Center", f"{_invented_word(rng)} Family Clinic",
                       f"{fake.last_name()} Regional Medical Center"])


def phone(rng: random.Random, fake: Faker) -> str:
    return rng.choice([fake.phone_number(), f"({_digits(rng, 3)}) {_digits(rng, 3)}-{_digits(rng, 4)}",
                       f"{_digits(rng, 3)}.{_digits(rng, 3)}.{_digits(rng, 4)}", f"+1 {_digits(rng, 3)} {_digits(rng, 3)} "  # noqa: E501
                       f"{_digits(rng, 4)}"])


def street(rng: random.Random, fake: Faker) -> str:
    return fake.street_address()


def city_line(rng: random.Random, fake: Faker) -> str:
    return f"{fake.city()}, {fake.state_abbr()} {fake.zipcode()}"


def city(rng: random.Random, fake: Faker) -> str:
    return fake.city()


_CONSONANTS = "BCDFGHJKLMNPQRSTVWXZ"


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_CONSONANTS if i % 3 else string.ascii_uppercase) for i in range(n))


def opaque_id(rng: random.Random, fake: Faker) -> str:
    """An identifier in no format a recognizer knows: letters and digits, dashed groups, long digit runs."""
    return rng.choice([
        f"{_letters(rng, 2)}{_digits(rng, 3)}{_letters(rng, 2)}{_digits(rng, 2)}",
        f"{_letters(rng, 3)}-{_digits(rng, 4)}-{_letters(rng, 1)}{_digits(rng, 1)}",
        f"{_digits(rng, rng.randint(7, 12))}", f"{_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 2)}",
        f"{_digits(rng, 2)}{_letters(rng, 4)}{_digits(rng, 3)}",
    ])


def policy_id(rng: random.Random, fake: Faker) -> str:
    """Health-plan and policy numbers of other carriers' formats."""
    return rng.choice([
        f"{_letters(rng, 3)}{_digits(rng, 6)}{_letters(rng, 1)}",
        f"{_digits(rng, 3)}-{_letters(rng, 2)}-{_digits(rng, 5)}",
        f"{_letters(rng, 2)}{_digits(rng, 2)}-{_letters(rng, 3)}{_digits(rng, 3)}", f"{_digits(rng, 11)}",
        f"{_letters(rng, 1)}{_digits(rng, 2)}{_letters(rng, 4)}{_digits(rng, 2)}",
    ])


def letter_id(rng: random.Random, fake: Faker) -> str:
    """An identifier of capital letters only (serials of some makers)."""
    return _letters(rng, rng.randint(8, 12))


def letter_vin(rng: random.Random, fake: Faker) -> str:
    """A vehicle identification number with no digit in it (no check digit either)."""
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(17))


def first_and_last(rng: random.Random, fake: Faker) -> str:
    """A common given name and a surname no list holds ("Quentin Zabrowski")."""
    return f"{fake.first_name()} {_invented_word(rng)}{rng.choice(['', 'ski', 'sen', 'ova', 'ek'])}"


SLOTS: dict[str, tuple[str, Generator]] = {
    "NAME": ("NAME", person), "SURNAME": ("NAME", surname), "DATE": ("DATE", date),
    "AGE": ("AGE_OVER_89", age_over_89), "PHONE": ("PHONE_FAX", phone), "FAX": ("PHONE_FAX", phone),
    "EMAIL": ("EMAIL", lambda r, f: f.email()), "SSN": ("SSN", ssn), "MRN": ("MRN", mrn),
    "PLAN": ("HEALTH_PLAN", plan_id), "ACCOUNT": ("ACCOUNT", account), "LICENSE": ("LICENSE", license_no),
    "DEA": ("LICENSE", dea), "NPI": ("LICENSE", npi), "VIN": ("VEHICLE", vin), "PLATE": ("VEHICLE", plate),
    "UDI": ("DEVICE", udi), "SERIAL": ("DEVICE", serial), "URL": ("URL", lambda r, f: f.url()),
    "IP": ("IP_ADDRESS", lambda r, f: r.choice([f.ipv4(), f.ipv6()])), "STREET": ("GEOGRAPHY", street),
    "CITYLINE": ("GEOGRAPHY", city_line), "CITY": ("GEOGRAPHY", city),
    "ZIP": ("GEOGRAPHY", lambda r, f: f.zipcode()), "HOSPITAL": ("FACILITY", hospital),
    "ID": ("OTHER_ID", lambda r, f: f"{''.join(r.choices(string.ascii_uppercase, k=2))}-{_digits(r, 6)}"),
    "OPAQUE": ("OTHER_ID", opaque_id), "POLICY": ("HEALTH_PLAN", policy_id), "LETTERS": ("DEVICE", letter_id),
    "LETTERVIN": ("VEHICLE", letter_vin), "FIRSTLAST": ("NAME", first_and_last),
}

TEMPLATES: tuple[str, ...] = (
    "DISCHARGE SUMMARY\nPatient: {NAME}\nMRN: {MRN}\nDOB: {DATE}\nAdmission Date: {DATE}\nDischarge Date: {DATE}\n"
    "Attending: Dr. {SURNAME}\n\nHPI: {AGE}-year-old woman with [[Type 2 diabetes]] and [[CKD stage 3]] admitted to "
    "[[Room 12]] for [[chest pain]]. [[Troponin 0.02]], [[HbA1c 7.2%]], [[BP 138/84]]. Started [[metformin 500 mg "
    "BID]].",
    "Pt {NAME} ({AGE} y/o M) seen in clinic on {DATE}. Lives at {STREET}, {CITYLINE}. Phone {PHONE}. "
    "Dx: [[I10]], [[E11.9]]. [[Pain 5/10]]. Continue [[lisinopril 10 mg daily]].",
    "Emergency contact: {NAME} (daughter), phone {PHONE}. Insurance: Member ID {PLAN}. SSN {SSN}.",
    "Referring physician: {NAME}, MD, NPI {NPI}, DEA {DEA}. Fax {FAX}. Email {EMAIL}.",
    "The patient arrived by car (VIN {VIN}, license plate {PLATE}) after a collision on Route 9. [[GCS 15]], "
    "[[2 lacerations]], [[Grade 1 splenic injury]].",
    "[[Pacemaker]] implanted on {DATE}: UDI {UDI}, serial number {SERIAL}. Interrogation normal, [[battery 8 years]].",
    "Patient portal login from IP {IP}; results released at {URL}. Account #{ACCOUNT} billed on {DATE}.",
    "Mr. {SURNAME} is a {AGE} year old veteran followed at {HOSPITAL}. Driver's license {LICENSE}. "
    "Patient ID: {ID}. Lab: [[WBC 11.2]], [[Na 138]], [[Cr 1.1]], [[INR 2.4]].",
    "Consult note {DATE}\nRequesting: {NAME}, RN\nReason: [[fall]] at home ({STREET}, {CITY}). Hx of [[Parkinson's "
    "disease]], on [[carbidopa-levodopa 25/100]] three times daily. [[ICD-10 G20]].",
    "Spoke with patient's wife, {NAME}, at {PHONE} regarding discharge to {HOSPITAL} on {DATE}. Her email is {EMAIL}.",
    "{NAME} called the nurse line on {DATE} reporting [[fever of 101.2 F]] for [[2 days]]. Advised [[Tylenol 650 mg "
    "q6h]]. Callback number {PHONE}.",
    "OPERATIVE NOTE\nSurgeon: Dr. {NAME}\nAssistant: {NAME}, PA-C\nDate of surgery: {DATE}\nProcedure: [[laparoscopic "
    "cholecystectomy]], [[3 ports]], [[EBL 20 mL]]. Specimen #{ID} to pathology.",
    "Medicare beneficiary number {PLAN}, policy number {PLAN}. Claim number {ID} submitted from {HOSPITAL}, "
    "{STREET}, {CITYLINE}.",
    "Home health visit: {NAME}, age {AGE}, at {STREET}. Son {NAME} present. [[O2 sat 94%]] on [[2 L]]. "
    "Next visit {DATE}.",
    "Radiology report accession {ID}. Comparison: [[CT]] dated {DATE}. Impression: [[4 mm nodule in RUL]], "
    "[[Fleischner]] follow-up in [[12 months]]. Read by {NAME}, MD.",
    "Pharmacy: refill for {NAME} (DOB {DATE}) at {HOSPITAL} pharmacy, Rx license {LICENSE}. [[Warfarin 5 mg]], "
    "[[INR goal 2-3]]. Contact {PHONE} or fax {FAX}.",
    "Patient {NAME} moved to {CITY} in {DATE}; new address {STREET}, {CITYLINE}. Records faxed to {FAX}.",
    "Death summary: {NAME}, {AGE}, expired on {DATE} at {HOSPITAL}. Cause: [[sepsis]]. Next of kin: {NAME}, {PHONE}.",
    "Telehealth visit {DATE} with {NAME} via {URL}. Device ID {SERIAL} ([[glucose monitor]]). [[A1c 8.1]], "
    "[[BMI 31]].",
    "Billing: account number {ACCOUNT}, health plan ID {PLAN}, group number {ID}. Guarantor {NAME}, SSN {SSN}, "
    "ZIP code {ZIP}.",
    # Identifiers after bare cue words in formats no specific recognizer knows, and surnames after a first name.
    # Even ids tune (cues: member, group, serial, #, account, claim, ID), odd ids measure (plan, VIN, policy).
    "Coverage verified for {NAME}: member {OPAQUE}, group {OPAQUE}. [[Group B strep]] screen negative; [[Type 1 "
    "diabetes]] on [[insulin glargine 20 units]] nightly. Plan: [[HbA1c]] in [[3 months]], [[Room 4]].",
    "Insurance card copied: plan {POLICY}, subscriber {NAME}. Plan: [[continue aspirin 81 mg]], [[recheck BMP]] in "
    "[[1 week]]; [[ECOG 1]].",
    "Glucose monitor replaced: serial {LETTERS}, old sensor #{OPAQUE}. {FIRSTLAST} taught [[fingerstick checks]] "
    "([[target 80-130 mg/dL]]); [[A1c 7.9]], [[#2 lancets]].",
    "Trauma bay: driver of the car, VIN {LETTERVIN}, identified as {FIRSTLAST} by EMS. [[GCS 14]], [[C-spine]] "
    "cleared, [[FAST negative]], [[lactate 2.1]].",
    "{FIRSTLAST} returned for a [[wound check]] on {DATE}; account {OPAQUE}. [[Cephalexin 500 mg QID]] for "
    "[[7 days]]. [[Pain 3/10]], [[Type 2]] wound.",
    "Message from {FIRSTLAST} about a refill: insurance plan {POLICY}, callback {PHONE}. [[Losartan 50 mg]] daily, "
    "[[K 4.6]], [[Cr 1.3]].",
    "Claim {OPAQUE} for {NAME}; ID {OPAQUE}. Dx [[J18.9]] ([[pneumonia]]), [[CURB-65 score 2]], [[SpO2 91%]] on "
    "[[room air]], [[ICD-10 code J18.9]].",
    "Daughter {FIRSTLAST} called: the patient's health plan {POLICY} and the VIN {LETTERVIN} are needed for the "
    "accident claim. [[INR 3.1]], hold [[warfarin 5 mg]]; [[stage 2 pressure injury]].",
)


_PIECE = re.compile(r"\{([A-Z]+)\}|\[\[(.+?)\]\]", re.DOTALL)


def _fill(template: str, rng: random.Random, fake: Faker) -> tuple[str, list[Span], list[Span]]:
    """The note, its PHI spans, and its clinical-content spans (`[[...]]` in the template: must survive)."""
    spans, keep, cursor = [], [], 0
    text = ""
    for match in _PIECE.finditer(template):
        text += template[cursor:match.start()]
        if match.group(1):
            label, generate = SLOTS[match.group(1)]
            value = generate(rng, fake)
            spans.append(Span(label, len(text), len(text) + len(value)))
        else:
            value = match.group(2)
            keep.append(Span(CLINICAL_CONTENT, len(text), len(text) + len(value)))
        text += value
        cursor = match.end()
    text += template[cursor:]
    return text, spans, keep


def generate(per_template: int = 40, seed: int = 7) -> list[Sample]:
    """per_template notes from each template, deterministic for a seed."""
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    samples = []
    for template_id, template in enumerate(TEMPLATES):
        for _ in range(per_template):
            text, spans, keep = _fill(template, rng, fake)
            samples.append(Sample(text, tuple(spans), str(template_id), tuple(keep)))
    return samples


def relevant(sample: Sample, span: Span) -> str:
    return span.label
