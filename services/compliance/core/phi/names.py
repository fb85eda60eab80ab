"""Names of patients, relatives and clinicians that NER misses, found by what introduces them:
titles ("Dr. Okafor"), labels ("Patient: ..."), relations ("daughter Maria"), credentials ("..., MD")."""
from __future__ import annotations

from spacy.lang.en.stop_words import STOP_WORDS

from services.compliance.core.phi.base import RuleRecognizer, rule
from services.compliance.core.phi.vocabulary import NOT_A_SURNAME, only_common_words, ordinary_word

_TOKEN = r"\p{Lu}[\p{Ll}'\u2019\p{Lu}-]*\p{Ll}[\p{Ll}'\u2019-]*"
_INITIAL = r"\p{Lu}(?:\.|(?![\p{L}'\u2019-]))"
_PARTICLE = r"(?:van|von|der|de|del|della|di|da|dos|du|la|le|bin|ibn|al|el|ter|ten|zu|st\.?)"
# One to four name words, initials ("J." / "J") and lower-case particles allowed inside.
NAME = (rf"(?P<value>{_TOKEN}(?:[ \t]+(?:{_TOKEN}|{_INITIAL}|{_PARTICLE}(?=[ \t]+\p{{Lu}}))){{0,3}}"
        rf"(?:[ \t]+(?:Jr|Sr|II|III|IV)\.?)?)")
_TITLES = (r"(?:(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Doctor|Nurse|Sister|Rev|Fr|Capt|Sgt|Atty)\.?|"
           r"(?:dr|mr|mrs|ms|mx|prof)\.)")
_CUES = (r"(?i:\b(?:my\s+name\s+is|name\s+is|name\s*:|names?\s+(?:are|were)|named|called|this\s+is|i\s*'?m|i\s+am|"
         r"patient\s*(?:name)?\s*:?|pt\.?\s*:?|seen\s+by|signed\s+by|electronically\s+signed\s+by|dictated\s+by|"
         r"transcribed\s+by|attending\s*(?:physician)?\s*:|physician\s*:|provider\s*:|surgeon\s*:|resident\s*:|"
         r"nurse\s*:|pcp\s*:|primary\s+care\s+(?:physician|provider)\s*:?|referring\s+(?:physician|provider)\s*:?|"
         r"referred\s+by|cc\s*:|emergency\s+contact\s*:?|contact\s+person\s*:?|guardian\s*:?|next\s+of\s+kin\s*:?|"
         r"nok\s*:|spouse\s*:|accompanied\s+by|spoke\s+with|discussed\s+with|consulted\s+with|"
         r"(?:his|her|their|the\s+patient'?s|pt'?s|patient'?s)\s+(?:wife|husband|son|daughter|mother|father|brother|"
         r"sister|partner|spouse|friend|caregiver|guardian|niece|nephew|aunt|uncle|grandson|granddaughter|"
         r"grandmother|grandfather|neighbor|neighbour|boyfriend|girlfriend|fiance|fiancée|stepson|stepdaughter),?|"
         r"maiden\s+name\s+(?:is|was)?|née|aka|a\.k\.a\.|alias|to\s+(?:mr|mrs|ms|dr)\.?|"
         r"attn\s*:?|dear|(?:every(?:one|body)\s+)?calls?\s+(?:me|him|her)|known\s+as|goes\s+by))")
# "with" after a meeting word ("Telehealth visit 9/19 with ...", "follow up with ..."): what follows may
# also be a department, so its first word must be no everyday word.
_MEETING_CUES = (r"(?i:\b(?:visit|appointment|session|meeting|call|consult(?:ation)?|follow(?:[- ]?up)?|met|talked|"
                 r"spoken)\b[^.\n]{0,40}?\bwith)")
_FUNCTION_WORDS = frozenset(STOP_WORDS)
_CREDENTIALS = r"(?:MD|M\.D\.|DO|D\.O\.|RN|NP|PA-C|PhD|DDS|DMD|PharmD|FNP|CNM|LPN|MSW|LCSW|DPM|OD|CRNA|APRN)\b"


def _a_name(value: str) -> bool:
    """Not only clinical vocabulary ("Patient Care") nor only function words ("Nurse: When did ...")."""
    return not only_common_words(value) and not only_common_words(value, _FUNCTION_WORDS)


def _a_surname(value: str) -> bool:
    """After a title any word but a heading or everyday word is a name ("Dr. Wells", "Mrs. Graves")."""
    return not only_common_words(value, NOT_A_SURNAME)


def _first_word_unusual(value: str) -> bool:
    return _a_name(value) and not ordinary_word(value.split()[0])


def _an_unusual_name(value: str) -> bool:
    """A name with no everyday word in it ("Tomomi", not "Sorry" or "Husband")."""
    return _a_name(value) and not any(ordinary_word(word) for word in value.split())


class TitledNameRecognizer(RuleRecognizer):
    """"Dr. Okafor", "Mrs. Kathrine Filemonsen", "Nurse Patel"."""

    RULES = (rule("PERSON", rf"(?<!\w){_TITLES}[ \t]+{NAME}", 0.85, _a_surname),)


class CuedNameRecognizer(RuleRecognizer):
    """A capitalised name after a cue: "My name is ...", "Patient: ...", "daughter, ...", "seen by ...",
    "visit on 9/19 with ..."."""

    RULES = (rule("PERSON", rf"{_CUES}[ \t]*(?:{_TITLES}[ \t]+)?{NAME}", 0.8, _a_name),
             rule("PERSON", rf"{_MEETING_CUES}[ \t]+{NAME}", 0.7, _first_word_unusual))


_SENTENCE_START = r"(?:^|(?<=[.!?][ \t]+))"


class SubjectNameRecognizer(RuleRecognizer):
    """A two- to four-word name opening a sentence whose verb is a clinical report ("Ann Lee called ..."),
    or followed by a birth date or age ("Ann Lee (DOB ...", "Ann Lee, 92 y/o"); one unusual word alone
    when it lives, comes from or is addressed ("Tomomi is from ...", "Leif, can I ...")."""

    RULES = (rule("PERSON", rf"(?:^|(?<=[.!?][ \t]+))(?P<value>{_TOKEN}(?:[ \t]+(?:{_TOKEN}|{_INITIAL})){{1,3}})"
                            r"(?=[ \t]+(?:called|calls|reports|reported|presents|presented|states|stated|denies|denied|"
                            r"complains|complained|was\s+seen|returns|returned|is\s+an?\s+\d))", 0.6, _a_name),
             rule("PERSON", rf"(?P<value>{_TOKEN}(?:[ \t]+(?:{_TOKEN}|{_INITIAL})){{1,3}})(?=[ \t]*[(,][ \t]*(?:DOB|D\.O\.B|"  # noqa: E501
                            r"(?i:age[ds]?\b)|\d{1,3}[ \t]*(?:y|yo|y/o|years?|[MF])\b|MRN))", 0.7, _a_name),
             # One name alone opening a sentence: "Megan lives on ...", "Tomomi is from ...", "Leif, can I ...".
             rule("PERSON", rf"{_SENTENCE_START}(?P<value>{_TOKEN})(?=[ \t]+(?:lives|lived|is\s+from|was\s+from|"
                            r"comes\s+from|works|worked|was\s+born)\b|,[ \t]+(?:can|could|would|will|may|please|do|"
                            r"did|are|have)\b)", 0.6, _an_unusual_name))


class CredentialedNameRecognizer(RuleRecognizer):
    """"Alice Walker, MD", "J. Okafor RN"."""

    RULES = (rule("PERSON", rf"(?:\b|(?<=\s))(?P<value>(?:\p{{Lu}}\.[ \t]*)?{_TOKEN}"
                            rf"(?:[ \t]+(?:{_TOKEN}|{_INITIAL})){{0,3}})"
                            rf",?[ \t]+{_CREDENTIALS}", 0.85, _a_name),)


class FacilityRecognizer(RuleRecognizer):
    """Hospitals, clinics and practices: "St. Mary's Hospital", "Lakeside Family Clinic"."""

    RULES = (
        rule("HOSPITAL", r"\b(?:(?:St\.?|Saint)[ \t]+)?(?:\p{Lu}[\p{L}'\u2019&.-]*[ \t]+(?:of[ \t]+|and[ \t]+|&[ \t]+)?){1,5}"  # noqa: E501
                         r"(?:Hospital|Medical[ \t]+Cent(?:er|re)|Clinic|Health[ \t]+System|Health[ \t]+Cent(?:er|re)|"
                         r"Healthcare|Infirmary|Hospice|Nursing[ \t]+Home|Rehabilitation[ \t]+Cent(?:er|re)|"
                         r"Medical[ \t]+Group|Memorial|Sanatorium|Urgent[ \t]+Care|Family[ \t]+Practice|"
                         r"Cancer[ \t]+Cent(?:er|re)|Surgical[ \t]+Cent(?:er|re)|Care[ \t]+Cent(?:er|re)|"
                         r"Pediatrics|Cardiology|Associates|Institute|Sanitarium)\b", 0.9, _a_name),
        rule("HOSPITAL", r"\b(?:Hospital|Clinic|Infirmary|University)[ \t]+of[ \t]+\p{Lu}[\p{L}'\u2019.-]*"
                         r"(?:[ \t]+\p{Lu}[\p{L}'\u2019.-]*){0,3}", 0.75),
    )
