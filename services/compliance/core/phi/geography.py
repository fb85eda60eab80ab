"""Geography below the state: street addresses (North American and European forms, units, PO and
military boxes, the lines of an address block), "City, ST 12345" lines, and ZIP / postal codes."""
from __future__ import annotations

import regex
from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from services.compliance.core.phi.base import RuleRecognizer, rule
from services.compliance.core.phi.gazetteers import person_names
from services.compliance.core.phi.vocabulary import NOT_PHI, everyday_word, only_common_words, ordinary_word

US_STATES = ["AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC", "PR", "GU", "VI", "AS", "MP"]  # noqa: E501
_STATE = "(?:" + "|".join(US_STATES) + ")"
_WORD = r"(?:\p{Lu}[\p{L}'\u2019.-]*|\d+(?:st|nd|rd|th))"
_NUMBER = r"\d{1,6}[A-Za-z]?(?:[-/]\d{1,5}[A-Za-z]?)?"
# USPS Publication 28 street suffixes (and their standard abbreviations).
_US_SUFFIX = ("(?:"
    "Crossroads|Expressway|Extensions|Throughway|Trafficway|Boulevard|Crossroad|Extension|Junctions|"
    "Mountains|Stravenue|Underpass|Causeway|Crescent|Crossing|Junction|Motorway|Mountain|Overpass|"
    "Parkways|Turnpike|Villages|Centers|Circles|Commons|Corners|Estates|Freeway|Gardens|Gateway|Harbors|"
    "Heights|Highway|Islands|Landing|Meadows|Mission|Orchard|Parkway|Passage|Prairie|Springs|Squares|"
    "Station|Streets|Terrace|Trailer|Valleys|Viaduct|Village|Arcade|Avenue|Bluffs|Bottom|Branch|Bridge|"
    "Brooks|Bypass|Canyon|Center|Circle|Cliffs|Common|Corner|Course|Courts|Divide|Drives|Estate|Fields|"
    "Forest|Forges|Garden|Greens|Groves|Harbor|Hollow|Island|Knolls|Lights|Manors|Meadow|Plains|Points|"
    "Radial|Rapids|Ridges|Shoals|Shores|Skyway|Spring|Square|Stream|Street|Summit|Tunnel|Unions|Valley|"
    "Alley|Annex|Bayou|Beach|Bluff|Brook|Burgs|Cliff|Court|Coves|Creek|Crest|Curve|Drive|Falls|Ferry|"
    "Field|Flats|Fords|Forge|Forks|Glens|Green|Grove|Haven|Hills|Inlet|Knoll|Lakes|Light|Locks|Lodge|"
    "Manor|Mills|Mount|Parks|Pines|Place|Plain|Plaza|Point|Ports|Ranch|Rapid|Ridge|River|Roads|Route|"
    "Shoal|Shore|Spurs|Trace|Track|Trail|Union|Views|Ville|Vista|Walks|Wells|Bend|Blvd|Burg|Camp|Cape|"
    "Clfs|Club|Cors|Cove|Cres|Crse|Crst|Cswy|Dale|Ests|Expy|Fall|Flat|Flds|Flts|Ford|Fork|Fort|Frks|Frst|"
    "Gdns|Glen|Gtwy|Hill|Holw|Isle|Keys|Lake|Land|Lane|Lndg|Loaf|Lock|Loop|Mall|Mdws|Mews|Mill|Mtwy|Neck|"
    "Opas|Orch|Oval|Park|Pass|Path|Pike|Pine|Pkwy|Pnes|Port|Psge|Radl|Ramp|Rest|Rnch|Road|Skwy|Spur|Stra|"
    "Strm|Tpke|Trak|Trce|Trfy|Trwy|Tunl|Upas|View|Walk|Wall|Ways|Well|Xing|Aly|Anx|Arc|Ave|Bch|Blf|Bnd|"
    "Brg|Brk|Btm|Byp|Byu|Cir|Clf|Cor|Cpe|Crk|Ctr|Cts|Cyn|Dam|Drs|Est|Ext|Fld|Fls|Flt|Frd|Frg|Frk|Fry|Fwy|"
    "Gdn|Gln|Grn|Grv|Hbr|Hls|Hts|Hvn|Hwy|Jct|Key|Knl|Lck|Ldg|Lgt|Lks|Mdw|Mnr|Msn|Mtn|Nck|Pln|Plz|Pne|Prt|"
    "Rdg|Riv|Row|Rpd|Rst|Rte|Rue|Run|Shl|Shr|Smt|Spg|Sta|Ter|Trl|Via|Vis|Vlg|Vly|Way|Av|Br|Cp|Ct|Cv|Dl|"
    "Dm|Dr|Dv|Ft|Hl|Is|Ky|Lk|Ln|Ml|Mt|Pl|Pr|Pt|Rd|Sq|St|Un|Vl|Vw|Wl|"
    # British and Commonwealth street types.
    "Esplanade|Promenade|Broadway|Parade|Close|Wharf|Wynd|Quay|Rise|Chase|Drove|Yard|Circus|Gate"
    r")\b\.?")
# Street-type endings of European street names, written on the name ("Feldstrasse 42", "Stelladreef 154")
# or as a word of their own ("Kossuth utca 64.", "Király u. 15.").
_EU_ENDINGS = (r"(?:straße|strasse|str\.|gasse|weg|platz|allee|ring|damm|ufer|vej|gade|allé|stræde|katu|tie|kuja|"
               r"polku|bulevardi|kaari|raitti|väg|vägen|gatan|gata|gränd|veien|vegen|gate|grenda|holtet|berget|havna|"
               r"stien|svingen|bakken|tunet|jordet|løkka|skogen|kroken|plassen|brekka|laan|straat|plein|gracht|kade|"
               r"dreef|singel|steeg|utca|útja|út|u\.|tér|körút|ulica|ul\.|aleja|cesta|ulice|náměstí|třída|iela|gatvė|"
               r"tee|puiestee|sokak|sok\u0131\u011f\u0131|caddesi|bulvar|vegur|braut|stígur|terrasse|vei|veg)")
# The endings that are no English words, for streets written in lower case ("hegyalja út 98.").
_LOWER_EU_ENDINGS = (r"(?:straße|strasse|gasse|weg|platz|allee|vej|gade|katu|kuja|väg|vägen|gatan|gata|gränd|veien|"
                     r"vegen|grenda|straat|gracht|dreef|utca|útja|út|körút|ulica|aleja|ulice|iela|gatvė|sokak|caddesi|"
                     r"bulvar|vegur|braut)")
# Every street with such an ending has the ending and its number ("strasse 12"): a cheap test first
# (looking back from each digit is much faster than trying the endings at each position).
_EU_GATE = regex.compile(rf"(?<=(?i:{_EU_ENDINGS})\s*)\d", regex.VERSION1)
# Street-type words opening a street name ("Rue de la Paix 12", "Piazza Giacobbe, 62", "ul. Hallera 51/45").
_EU_PREFIXES = (r"(?:Rue|Via|Viale|Vicolo|Piazza|Piazzale|Corso|Largo|Contrada|Borgo|Strada|Calle|C/|Avenida|Av\.|"
                r"Avda\.?|Rua|Praça|Travessa|Estrada|Alameda|Plaza|Paseo|Pasaje|Glorieta|Cañada|Cuesta|Acceso|"
                r"Pasadizo|Ronda|Camino|Callejón|Carretera|Travesía|Carrer|Ulica|Aleja|Plac|ul\.|al\.|pl\.|os\.|"
                r"Boulevard|Bd|Avenue|Chemin|Allée|Impasse|Quai|Odos|Leoforos|Str\.|Aleea|Soseaua|Șoseaua|Intrarea|"
                r"Bulevardul|Calea|Splaiul)")
# Street-type words opening a street name that are no English words, for streets in lower case.
_LOWER_EU_PREFIXES = (r"(?:rue|boulevard|impasse|allée|quai|chemin|avenue|viale|vicolo|piazza|piazzale|corso|largo|"
                      r"contrada|strada|calle|avenida|rua|praça|travessa|paseo|pasaje|glorieta|carrer|ulica|aleja|plac)")
# Lower-case particles inside street and town names ("Via dei Fiorentini", "Rua Vinte e Cinco de Setembro").
_STREET_PARTICLE = (r"(?:de|del|della|dei|degli|delle|dello|di|da|do|dos|das|des|du|la|le|les|l'|d'|e|y|van|von|der|"
                    r"den|am|an|zum|zur)")
_UNIT_BODY = (r"(?:(?:Apt|Apartment|Suite|Ste|Unit|Bldg|Building|Fl|Floor|Flat|Studio|Piso|Puerta|Piano|"
              r"Room(?=\s*\d+\w?\s*,))\.?\s*#?\s*[A-Za-z0-9-]+|"
              r"(?i:apt|apartment|suite|ste|unit|bldg|building|flat)\.?\s*#?\s*\d[A-Za-z0-9-]*)")
_UNIT = rf"(?:,?\s*{_UNIT_BODY})"
_UNIT_WORD = r"(?i:apt|apartment|suite|ste|unit|bldg|building|fl|floor|flat|studio|room)\b"
# Postcodes of the forms that do not read as a plain number: UK "WR36 9JA", Canada "K1A 0B1", the Netherlands
# "5951 WT", Poland "84-054", Portugal "5622-415", Czechia and Sweden "440 56", Hungary "H-1215"; and 4-6 digits.
POSTCODE = (r"(?:[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2}|[A-Z]\d[A-Z][ \t]?\d[A-Z]\d|\d{4}[ \t]?[A-Z]{2}|\d{2}-\d{3}|"
            r"\d{3}[ \t]\d{2}|[A-Z]{1,2}-\d{4,5}|\d{4,6}(?:-\d{3,4})?)(?![\w-])")


_NOT_A_UNIT_OF_MEASURE = (r"(?!\s*(?i:mg|mcg|\u00b5g|g|kg|ml|l|units?|iu|%|mmol|meq|tabs?|tablets?|caps?|capsules?|"
                          r"puffs?|drops?|times|x\b|hours?|hrs?|days?|weeks?|months?|years?|minutes?|mins?|am|pm|"
                          r"mmhg|bpm|cm|mm|in|lbs?|kg|oz)\b)")
# What may follow a street on the same or the next lines: units, town, state, postcode, country. A line
# may open with a bullet ("??? ", "- "); a line of lower-case words only counts as a whole line. A town's
# word has no full stop but for a short abbreviation ("St.", "Mt."), so a sentence's end ends the address.
_TOWN_WORD = (r"(?:\p{Lu}\p{L}{0,2}\.|\p{Lu}[\p{L}\u2206'\u2019-]*(?:\.(?=[\p{L}-]))?[\p{L}\u2206'\u2019-]*(?!\d)|"
              r"(?:de|del|do|da|du|la|di|dos|das|van|von|der|sur|upon|on|nad|u|am|an)(?=[ \t]+\p{Lu}))")
_BULLET = r"(?:[^\w\s,]{1,4}[ \t]+)?"
_LOWER_LINE = (rf"(?<=\n[ \t]*{_BULLET})\p{{Ll}}[\p{{Ll}}'\u2019.-]+(?:[ \t]+\p{{Ll}}[\p{{Ll}}'\u2019.-]+){{0,2}}"
               r"(?:[ \t]+\d{3,6})?(?=[ \t]*(?:\n|$))")
_PIECE = (rf"(?:{_UNIT_BODY}|{POSTCODE}|{_TOWN_WORD}(?:[ \t]+{_TOWN_WORD}){{0,3}}|\d{{3,6}}(?:-\d{{3,4}})?|"
          rf"\d{{1,2}}(?=[ \t]+\d{{4,6}})|\([^)\n]{{1,30}}\)|nan|{_LOWER_LINE})(?![\p{{L}}'\u2019]*[ \t]*:)")
_SEPARATOR = (rf"(?:[ \t]*\n[ \t]*{_BULLET}(?:,[ \t]*)?|[ \t]*,[ \t]*|[ \t]+|"
              rf"[ \t]*\n[ \t]*\n[ \t]*(?=\p{{Lu}}[\p{{L}} ]+\d{{4,6}}))")
_CONTINUATION = regex.compile(rf"(?:{_SEPARATOR}{_PIECE})+", regex.VERSION1)


_LOWER_US_SUFFIX = (r"(?:street|avenue|road|boulevard|drive|lane|court|place|terrace|crescent|parkway|highway|close|"
                    r"st\.|ave\.?|rd\.|blvd\.?)(?!\w)")
# Words that do not stand inside a street name ("walked 2 blocks down the street", "live at Feldstrasse 4").
_NOT_IN_STREET = (r"(?:the|a|an|of|to|down|up|across|on|in|at|from|into|onto|this|that|my|his|her|their|our|your|and|"
                  r"or|is|it|live|lives|send|ship|located|address)\b")


_START = r"(?<![\w/.-])"
_HOUSE = rf"(?:{_NUMBER},?\s+)"
_LETTERS = r"[\p{L}'\u2019-]*"
# The building number after a street name ("Feldstrasse 42", "Pamela-Geisel-Ring 43/38", "Király u. 15.").
_BUILDING = rf",?\s*{_NUMBER}\b\.?{_UNIT}?"
# A word of a lower-case street name, not a word of the sentence around it.
_LOWER_STREET_WORD = rf"(?!{_NOT_IN_STREET})\p{{L}}{_LETTERS}"


_CAPITALISED = regex.compile(r"(?<!\w)\p{Lu}[\p{L}'\u2019-]+")
_UNIT_WORDS = regex.compile(rf"^{_UNIT_WORD}", regex.VERSION1)


def _street_words(value: str) -> bool:
    """No capitalised word of a street is an everyday or clinical one, nor a short acronym ("1200 Hours",
    "2023 BIRADS 2"); unit words ("Suite") aside."""
    words = [w for w in _CAPITALISED.findall(value) if not _UNIT_WORDS.match(w)]
    return not any(ordinary_word(w) or (w.isupper() and len(w) <= 6) for w in words)


_BLOCK_LINES = regex.compile(r"\n|,[ \t]*(?=\d)")


def _postal_block(value: str) -> bool:
    """The street and the town line each open with a word that is no everyday or clinical one ("Bed 12,
    1200 Hours" is no address, "49 Caitlin Towers\nCameronstad, SA, 2915" is)."""
    lines = _BLOCK_LINES.split(value, maxsplit=1)
    return not any(words and ordinary_word(words[0]) for words in map(_CAPITALISED.findall, lines))


# The other street of an intersection written before a found one: "at Růžena and Király u. 15.".
_CROSS_STREET = regex.compile(r"(?:\b(?:at|on|to|is|of|in)[ \t]+|[:\n][ \t]*|^)"
                              r"(?P<street>(?:\p{Lu}[\p{L}'\u2019.-]*[ \t]+){1,3})(?:and|&)[ \t]+$", regex.VERSION1)
_CROSS_STREET_CHARS = 60


class _AddressRecognizer(RuleRecognizer):
    """A rule recognizer whose streets take in what follows them: units, town, state, postcode, country,
    on the same or the next lines, less trailing everyday or clinical words ("...\nThank you"); and the
    cross street written before one ("at Leon and Eyrarodda 66")."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        results = self.streets(text, entities, nlp_artifacts)
        for result in results:
            tail = _CONTINUATION.match(text, result.end)
            if tail:
                result.end = max(result.end, _without_everyday_tail(text, result.end, tail.end()))
            cross = _CROSS_STREET.search(text, max(0, result.start - _CROSS_STREET_CHARS), result.start)
            if cross and not any(ordinary_word(w) for w in cross.group("street").split()):
                result.start = cross.start("street")
        return results

    def streets(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None) -> list[RecognizerResult]:
        """The streets found by the rules, before what follows them is added."""
        return super().analyze(text, entities, nlp_artifacts)


_LAST_WORD = regex.compile(r"[\s,]*(?<![\w.'\u2019-])(\p{L}[\p{L}'\u2019.-]*)$")


def _without_everyday_tail(text: str, start: int, end: int) -> int:
    """The end of text[start:end] once trailing everyday or clinical words are dropped."""
    while end > start:
        last = _LAST_WORD.search(text, start, end)
        if not last or not ordinary_word(last.group(1)):
            return end
        end = last.start()
    return end


class StreetAddressRecognizer(_AddressRecognizer):
    """"1234 N. Oak Street, Apt 5", "5521 119 Countess Close", "P.O. Box 287", "PSC 0413, Box 8144 APO AA
    42323", "Suite 442", "3911 fourth avenue" — North American, British and military forms."""

    RULES = (
        rule("STREET_ADDRESS", rf"(?<![\w/.-])(?:{_NUMBER}[ \t]+){{1,2}}(?:(?:[NSEW]|North|South|East|West)\.?[ \t]+)?"
                               rf"(?:{_WORD}[ \t]+){{0,3}}{_US_SUFFIX}(?:[ \t]+[NSEW]{{1,2}}\b)?{_UNIT}?", 0.85),
        # A house number before and after the street's name ("20789 Allika 46"), which has no everyday words.
        rule("STREET_ADDRESS", rf"(?<![\w/.,-])\d{{2,6}}[ \t]+(?:{_TOWN_WORD}[ \t]+){{1,3}}\d{{1,5}}\b"
                               rf"{_NOT_A_UNIT_OF_MEASURE}{_UNIT}?", 0.6, _street_words),
        # In lower case, a US street type after a number ("3911 fourth avenue", not "2 blocks down the street").
        rule("STREET_ADDRESS", rf"{_START}(?:\d{{1,6}}\s+){{1,2}}(?:(?!{_NOT_IN_STREET})\p{{Ll}}{_LETTERS}\s+){{1,3}}"
                               rf"{_LOWER_US_SUFFIX}{_UNIT}?", 0.7),
        rule("STREET_ADDRESS", r"(?<![\w-])(?:\d{1,6}\s+)?(?i:P\.?\s?O\.?\s*Box\s+\d+)", 0.85),
        rule("STREET_ADDRESS", r"\b(?i:PSC|CMR|Unit|USNS|USNV|USS)\s+[\w ]{0,20}?\d{0,5},?\s+(?i:box)\s+\d{3,5}"
                               r"(?:\s+(?i:[AFD]PO)\s+(?i:A[AEP])\s+\d{5})?", 0.85),
        rule("STREET_ADDRESS", r"\b(?:USNS|USNV|USS)\s+\p{Lu}\w+(?:\s+(?i:[AFD]PO)\s+(?i:A[AEP])\s+\d{5})?", 0.8),
        rule("STREET_ADDRESS", r"\b(?i:[AFD]PO)\s+(?i:A[AEP])\s+\d{5}\b", 0.85),
        rule("STREET_ADDRESS", r"\b(?:Apt|Apartment|Suite|Ste|Unit|Flat|Studio)\.?\s*#?\s*\d+[A-Za-z]?\b", 0.6),
    )


_NAMED_WORD = regex.compile(r"(\p{L}[\p{L}'\u2019-]*)\.?[ \t]*,?[ \t]*\d")


def _not_a_name(value: str) -> bool:
    """The word before the number is no person's name or everyday word that happens to end like a street
    ("Daniela 5", "Spring 2"), as "Feldstrasse 42" is not."""
    word = _NAMED_WORD.search(value)
    return word is None or not (word.group(1) in person_names() or everyday_word(word.group(1)))


class EuropeanStreetRecognizer(_AddressRecognizer):
    """Continental street forms, capitalised or in lower case: a street-type ending ("Villacher Strasse 89",
    "Beckmannplatz 74/37", "hegyalja út 98."; not a name that ends alike: "Daniela 5") or opening word
    ("Rue de la Paix 12", "18, rue Manon Roux", "Piazza Giacobbe, 62", "al. Chopina 00")."""

    RULES = (
        rule("STREET_ADDRESS", rf"{_START}{_HOUSE}?(?:{_WORD}[ -]){{0,2}}\p{{Lu}}[\p{{L}}-]*(?i:{_EU_ENDINGS})"
                               rf"{_BUILDING}", 0.8, _not_a_name, gate=_EU_GATE),
        rule("STREET_ADDRESS", rf"{_START}{_HOUSE}?(?:\p{{Lu}}{_LETTERS}\s+){{0,2}}\p{{Lu}}[\p{{L}}-]*\s+"
                               rf"(?i:{_EU_ENDINGS}){_BUILDING}", 0.8, gate=_EU_GATE),
        rule("STREET_ADDRESS", rf"{_START}{_HOUSE}?(?:{_LOWER_STREET_WORD}\s+){{0,2}}{_LOWER_STREET_WORD}\s+"
                               rf"(?i:{_LOWER_EU_ENDINGS}){_BUILDING}", 0.75, gate=_EU_GATE),
        rule("STREET_ADDRESS", rf"{_START}{_HOUSE}?{_LOWER_STREET_WORD}(?<=\p{{L}})(?i:{_LOWER_EU_ENDINGS})"
                               rf"{_BUILDING}", 0.75, _not_a_name, gate=_EU_GATE),
        rule("STREET_ADDRESS", rf"{_START}{_HOUSE}?{_EU_PREFIXES}\s+(?:(?:(?:[dl]['\u2019])?{_WORD}|"
                               rf"{_STREET_PARTICLE})\s+){{0,5}}{_WORD}{_BUILDING}", 0.75),
        rule("STREET_ADDRESS", rf"{_START}{_HOUSE}{{0,2}}{_LOWER_EU_PREFIXES}\s+"
                               rf"(?:(?:\p{{L}}{_LETTERS}|{_STREET_PARTICLE})\s+){{0,4}}{_NUMBER}\b{_UNIT}?", 0.7),
        rule("STREET_ADDRESS", rf"{_START}{_HOUSE}{{1,2}}(?i:{_LOWER_EU_PREFIXES})(?:\s+{_STREET_PARTICLE})*\s+"
                               rf"\p{{L}}{_LETTERS}(?:\s+\p{{Lu}}{_LETTERS}){{0,2}}{_UNIT}?", 0.7),
    )


# What opens the line after a street in a postal address: a postcode and town ("440 56 Šluknov"), or a town
# with its state or province code and postcode ("Cameronstad, SA, 2915", "Mioveni, 300332").
_TOWN_LINE = (rf"(?:{POSTCODE}[ \t]+\p{{Lu}}{_LETTERS}|\p{{Lu}}{_LETTERS}(?:[ \t]+\p{{L}}{_LETTERS}){{0,3}},?[ \t]+"
              rf"(?:[A-Z]{{2,3}},?[ \t]+)?\d{{4,6}}(?![\w-]))")


# A street's name in a postal block: capitalised, lower-case words inside ("Pot na most"), no sentence words.
_STREET_WORDS = (rf"(?!(?:I|We|You|He|She|They|It|The|A|An|My|Our|Your|His|Her|Their|This|That|Please)\b)"
                 rf"\p{{Lu}}{_LETTERS}(?:[ \t]+{_LOWER_STREET_WORD}){{0,4}}")


# The street line of a postal block, read back from where its town line starts.
_STREET_BEFORE = regex.compile(rf"(?<![\w/.-])(?:{_NUMBER}[ \t]+{_STREET_WORDS}|{_STREET_WORDS},?[ \t]+"
                               rf"(?:Nr\.?[ \t]*)?{_NUMBER}\.?)(?:{_UNIT})?[ \t]*(?P<separator>,|\n)[ \t]*$",
                               regex.VERSION1)
_STREET_LINE_CHARS = 120


class PostalBlockRecognizer(_AddressRecognizer):
    """A street of any form when a postcode and town follow it, on the next line or after a comma
    ("Dejvická 432\n440 56 Šluknov", "Kristoffersenhavna 2, 7368 Karifjord", "49 Caitlin Towers\nCameronstad,
    SA, 2915", "Aleea Lascăr Voinea Nr. 42\nSinaia, 156224"): the town line says the line before is an address
    (when the street and the town open with no everyday or clinical word: "Bed 12, 1200 Hours" is none).

    The town lines are found first (few), then each one's street is read back from it."""

    RULES = (rule("STREET_ADDRESS", rf"(?:^|(?<=,))[ \t]*(?P<value>{_TOWN_LINE})", 0.7),)

    def streets(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None) -> list[RecognizerResult]:
        found = []
        for result in super().streets(text, entities, nlp_artifacts):
            street = _STREET_BEFORE.search(text, max(0, result.start - _STREET_LINE_CHARS), result.start)
            after_comma = street is not None and street.group("separator") == ","
            if street is None or (after_comma and not _POSTCODE_FIRST.match(text, result.start)):
                continue
            result.start = street.start()
            if _postal_block(text[result.start:result.end]):
                found.append(result)
        return found


_POSTCODE_FIRST = regex.compile(POSTCODE, regex.VERSION1)


class CityStateZipRecognizer(RuleRecognizer):
    """"Springfield, IL 62704" and "Boston, MA" (the city is below the state: HIPAA removes it)."""

    RULES = (
        rule("LOCATION", rf"(?P<value>\p{{Lu}}[\p{{L}}'\u2019.-]*(?:[ \t]+\p{{Lu}}[\p{{L}}'\u2019.-]*){{0,3}}),[ \t]*{_STATE}"  # noqa: E501
                         r"(?:[ \t]+\d{5}(?:-\d{4})?)?\b", 0.75),
        rule("ZIP_CODE", rf"\b{_STATE}[ \t]+(?P<value>\d{{5}}(?:-\d{{4}})?)\b", 0.85),
    )


_CORNER_STREET = (r"(?:[\p{Lu}\d]|(?:ul|u|str|rue|via)\.?\s)[^\n.?!,&]{0,40}?(?:\.[^\n.?!,&]{0,30}?)?"
                  r"(?=\s+(?:and|&)\s|[.?!,]|\n|$)")


class AddressLabelRecognizer(RuleRecognizer):
    """What follows "Address:" / "lives at" / "resides at": to the end of the line, or the next
    few short lines of an address block."""

    RULES = (
        rule("LOCATION", r"(?i:\b(?:home\s+|mailing\s+|street\s+|permanent\s+|billing\s+)?address(?:es)?(?:\s+is)?"
                         r"\s*:)[ \t]*\n?[ \t]*(?P<value>[^\n]{3,80}(?:\n[ \t]*[^\n:]{2,40}){0,3})", 0.7),
        # An intersection, the phrase included: "the corner of Dalbraut 99 and Frederikke Coves" (not "the
        # corner of the mouth": each street opens with a capital or a number).
        rule("LOCATION", rf"(?P<value>(?i:\b(?:the\s+)?corner\s+of)\s+{_CORNER_STREET}\s+(?:and|&)\s+{_CORNER_STREET})",
             0.7),
        rule("LOCATION", r"(?i:\b(?:lives|living|resides|residing|reside|moved|located|situated)\s+(?:at|on|in)\s+"
                         r"(?:the\s+\w+\s+(?:side|end|part)\s+of\s+)?)"
                         rf"(?P<value>(?:\d[\w-]*\s+)?\p{{Lu}}[\p{{L}}'\u2019.-]*(?:\s+\p{{Lu}}[\p{{L}}'\u2019.-]*|"
                         rf"\s+{_STREET_PARTICLE}(?=\s+\p{{Lu}})|\s+\d{{1,5}}\b){{0,4}})", 0.7),
    )


# What introduces where one lives or comes from ("originally from", "born in", "I am in") ...
_HOME_CUES = (r"(?i:\b(?:(?:originally|is|are|was|were|am|come|comes|came|moved(?:\s+here|\s+back)?|relocated|"
              r"emigrated|immigrated)\s+from|(?:live[sd]?|living|reside[sd]?|residing|born|raised|grew\s+up|based|"
              r"located|stationed|settled|stay(?:s|ed|ing)?)\s+in|(?:i\s+am|i'm|we\s+are|we're|currently)\s+in|"
              r"native\s+of|resident\s+of|hometown\s+(?:is|of)))")
# ... and where one goes, which in a clinical note is as often a department ("went to Physical Therapy").
_TRAVEL_CUES = (r"(?i:\b(?:(?:moved|relocated|travel(?:l?ed|l?ing)?|trip|flew|drove|went|going|headed|heading|"
                r"returned|returning|back)\s+to|arrived\s+(?:at|in)))")
# A town's words: capitalised, inner dots only ("St.", not the full stop of "Home. Went"); the
# increment sign (U+2206) often stands for a capital delta in Greek town names.
_PLACE_WORD = r"(?:St\.|\p{Lu}[\p{L}\u2206'\u2019-]*(?:\.[\p{L}'\u2019-]+)*)"
_PLACE = (rf"(?P<value>{_PLACE_WORD}(?:[ \t]+(?:{_PLACE_WORD}|(?:de|del|do|da|du|la|di|nad|upon|on|"
          r"am|an|sur)(?=[ \t]+\p{Lu}))){0,3}(?:[ \t]+\([\p{L} ]{1,20}\))?)")


def _a_place(value: str) -> bool:
    """Not clinical or everyday words ("Clinic", "Home"), not a short acronym ("ICU")."""
    words = _place_words(value)
    if len(words) == 1 and (ordinary_word(words[0]) or (words[0].isupper() and len(words[0]) <= 4)):
        return False
    return not only_common_words(value) and not all(ordinary_word(w) for w in words)


def _a_destination(value: str) -> bool:
    """A place, not ending in an everyday word and with no clinical word ("Assisted Living", "Cath Lab")."""
    words = _place_words(value)
    return _a_place(value) and not ordinary_word(words[-1]) and not any(w.lower() in NOT_PHI for w in words)


def _place_words(value: str) -> list[str]:
    return [w for w in value.split() if not w.startswith("(")]


class CuedPlaceRecognizer(RuleRecognizer):
    """A town after what introduces a place one lives in, comes from or goes to: "originally from
    ΕΓΚΩΜΗ", "I am in Rohod for ...", "moved to Judyfort", "arrived at Khandallah" (where one goes, not
    when it reads as a department: "went to Physical Therapy")."""

    # The cue as a look-behind: trying it only before capitalised words is several times faster.
    RULES = (rule("LOCATION", rf"(?<={_HOME_CUES}[ \t]+){_PLACE}", 0.6, _a_place),
             rule("LOCATION", rf"(?<={_TRAVEL_CUES}[ \t]+){_PLACE}", 0.6, _a_destination))


# Where a street is said to be ("deliver to", "at", "lives on", "address:"): what follows may be a street
# written with no street type, its name before or after the house number ("Plachého 5", "Skoltorget 20",
# "96 Perez Riverway", "072/514 Jason Centreway").
_STREET_CUES = (r"(?i:\b(?:at|to|on|address(?:\s+is)?\s*:?|(?:lives?|living|resides?|located|situated)\s+(?:at|on)|"
                r"deliver(?:ed)?\s+to|sent\s+to|moved\s+to))")
_NAME_WORD = r"\p{Lu}[\p{Ll}\p{Lu}'\u2019-]*\p{Ll}[\p{Ll}'\u2019-]*\.?"
_HOUSE_NUMBER = r"\d{1,5}[a-z]?(?:[/-]\d{1,4}[a-z]?)?"


def _street_name(value: str) -> bool:
    """Its capitalised words are no everyday, clinical or title words ("Room 12", "Metformin 500",
    "Phase 2", "Dr. Lee 5" are no streets)."""
    words = [w.rstrip(".") for w in _CAPITALISED.findall(value)]
    return bool(words) and not any(ordinary_word(w) or w.lower() in NOT_PHI for w in words)


class PostalCodeRecognizer(RuleRecognizer):
    """Postal codes after a label ("ZIP: 02118", "postal code B0J 2H0", "the zip is 71286652"), and after a
    town's name."""

    RULES = (
        rule("ZIP_CODE", r"(?i:\b(?:zip(?:\s*code)?|postal\s*code|post\s*code|postcode|plz)\b)"
                         r"\s*(?:[:#]|is\b|was\b)?\s*"
                         r"(?P<value>[A-Za-z0-9]{2,8}(?:[ -](?=[A-Za-z]*\d)[A-Za-z0-9]{2,4})?)\b", 0.85),
        # A postcode of five or more characters after a town's name ("Uddevalla 51676", "Papradno 846 72",
        # "Mosonmagyaróvár H-9872", "Lierop 5019MV"): the two are a place.
        rule("LOCATION", rf"(?<![\w-])(?P<value>{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}},?[ \t]+(?:\d{{5,6}}|"
                         r"\d{3}[ \t]\d{2}|\d{2}-\d{3}|[A-Z]-\d{4}|\d{4}[ \t]?[A-Z]{2}))(?![\w-])"
                         rf"{_NOT_A_UNIT_OF_MEASURE}", 0.5, _street_name),
    )


class CuedStreetRecognizer(_AddressRecognizer):
    """A street with no street type after a word that says where ("Deliver to Plachého 5", "moved to Skoltorget
    20", "the pharmacy at 96 Perez Riverway"); not when a unit of measure follows ("on Entresto 24/26 mg")."""

    RULES = (
        rule("STREET_ADDRESS", rf"{_STREET_CUES}[ \t]+(?P<value>{_NAME_WORD}(?:[ \t]+(?:{_NAME_WORD}|"
                               rf"{_STREET_PARTICLE}(?=[ \t]+\p{{Lu}}))){{0,3}},?[ \t]+{_HOUSE_NUMBER}"
                               rf"{_NOT_A_UNIT_OF_MEASURE}(?![\w/-]|[.,]\d){_UNIT}?)", 0.55, _street_name),
        rule("STREET_ADDRESS", rf"{_STREET_CUES}[ \t]+(?P<value>{_HOUSE_NUMBER}(?:[ \t]+\d{{1,5}})?[ \t]+"
                               rf"{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}}{_UNIT}?)(?![\w'\u2019-])", 0.55,
             _street_name),
    )


# What towns are called by their shape, beyond any list: a word ending like a town ("Jonesburgh",
# "Alisonmouth", "Leahfurt"), a word opening a town's name ("New ...", "Port ...", "Lake ..."), two
# names joined by a town particle ("Lúčnica nad Žitavou", "Ribeiro das Pedras").
TOWN_ENDINGS = ("mouth", "side", "chester", "bury", "burgh", "borough", "boro", "ville", "furt", "haven", "view",
                "stad", "port", "fort", "field", "ford", "berg", "burg", "dorf", "hausen", "heim", "stadt", "wick",
                "town", "ton", "land", "shire", "dale", "wood", "vár", "falva", "háza", "hely", "by", "borg", "köping",
                "grad", "polis", "heide", "feld", "kirchen", "bach")
TOWN_OPENERS = frozenset({"New", "North", "South", "East", "West", "Port", "Lake", "Mount", "Fort", "Saint", "St.",
                          "San", "Santa", "Santo", "São", "Los", "Las", "El", "Bad", "Nowy", "Nowa", "Nové", "Nový",
                          "Velké", "Velký", "Malé", "Upper", "Lower", "Great", "Little", "Old", "Villa", "Monte",
                          "Porto", "Castel", "Bom", "Nueva", "Nuevo", "Puerto", "Ciudad"})
TOWN_PARTICLES = frozenset({"nad", "pod", "de", "das", "dos", "do", "da", "di", "del", "sur", "am", "an", "upon",
                            "im", "ob", "bei", "en", "la", "le", "sul", "sull"})
# Words before a town: "in", "near", "through" ... (where one lives or goes is CuedPlaceRecognizer's).
PLACE_PREPOSITIONS = frozenset({"in", "near", "through", "around", "outside", "via", "towards", "across", "from",
                                "to", "at"})
_TOWN_WORD_SHAPE = regex.compile(r"\p{Lu}[\p{Ll}\p{Lu}'\u2019-]*\p{Ll}[\p{Ll}'\u2019-]*$")
_PROPER = frozenset({"NNP", "NNPS"})
_NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})


def _town_word(token) -> bool:
    word = token.text
    return bool(_TOWN_WORD_SHAPE.match(word)) and not ordinary_word(word) and word.lower() not in NOT_PHI


def _town_shaped(word: str) -> bool:
    lower = word.lower()
    return any(lower.endswith(ending) and len(lower) - len(ending) >= 3 for ending in TOWN_ENDINGS)


class PlaceShapeRecognizer(LocalRecognizer):
    """Towns no list holds, by their shape: a proper noun ending like a town ("Alisonmouth", "CharpentierVille"),
    an opener and a proper noun ("New Jacquelinemouth", "North Nesip"), names joined by a town particle
    ("Lúčnica nad Žitavou"), and proper nouns after "in", "near", "through" ... ("The clinic in Glennmouth");
    never everyday, clinical or organisation words."""

    SCORE = 0.5

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=["LOCATION"], supported_language=supported_language,
                         name=type(self).__name__)

    def load(self) -> None:
        """Nothing to load: it reads the tags spaCy gave."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        if nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        doc = nlp_artifacts.tokens
        results = []
        for token in doc:
            end = self._place_end(doc, token)
            if end is not None:
                results.append(RecognizerResult("LOCATION", token.idx, end, self.SCORE, recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return results

    def _place_end(self, doc, token) -> int | None:
        """Where a place that starts at this token ends (None: none starts here)."""
        proper = token.tag_ in _PROPER
        following = _adjacent(doc, token.i)
        if token.text in TOWN_OPENERS and following is not None and following.tag_ in _PROPER \
                and _town_word(following):
            return following.idx + len(following.text)
        if not _town_word(token) or not (proper or (token.tag_ in _NOUN_TAGS and _town_shaped(token.text))):
            return None
        if following is not None and following.text in TOWN_PARTICLES:
            named = _adjacent(doc, following.i)
            if named is not None and _town_word(named) and named.text[:1].isupper():
                return named.idx + len(named.text)
        before = doc[token.i - 1] if token.i > 0 else None
        after_preposition = before is not None and before.text in PLACE_PREPOSITIONS and token.text[:1].isupper()
        if _town_shaped(token.text) or (after_preposition and not (following is not None
                                                                   and following.tag_ in _PROPER)):
            return token.idx + len(token.text)
        return None


def _adjacent(doc, index: int):
    """The token after doc[index] when a single space separates them, else None."""
    if index + 1 >= len(doc):
        return None
    token, following = doc[index], doc[index + 1]
    return following if following.idx == token.idx + len(token.text) + 1 else None
