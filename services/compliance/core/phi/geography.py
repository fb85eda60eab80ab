"""Geography below the state: street addresses (North American and European forms, units, PO and
military boxes, the lines of an address block), "City, ST 12345" lines, and ZIP / postal codes."""
from __future__ import annotations

import regex
from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from services.compliance.core.phi.base import RuleRecognizer, rule

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
    "Dm|Dr|Dv|Ft|Hl|Is|Ky|Lk|Ln|Ml|Mt|Pl|Pr|Pt|Rd|Sq|St|Un|Vl|Vw|Wl"
    r")\b\.?")
_EU_ENDINGS = (r"(?:straße|strasse|str\.|gasse|weg|platz|allee|ring|damm|ufer|vej|gade|allé|stræde|katu|tie|kuja|"
               r"polku|väg|vägen|gatan|gata|veien|vegen|gate|laan|straat|plein|gracht|kade|utca|út|u\.|tér|körút|"
               r"ulica|ul\.|aleja|cesta|ulice|náměstí|třída|iela|gatvė|tee|puiestee|sokak|sok\u0131\u011f\u0131|caddesi|bulvar)")
_EU_PREFIXES = (r"(?:Rue|Via|Viale|Piazza|Piazzale|Corso|Largo|Calle|Avenida|Av\.|Avda\.?|Rua|Praça|Travessa|Plaza|"
                r"Paseo|Carrer|Ulica|ul\.|Boulevard|Bd|Avenue|Chemin|Allée|Impasse|Strada|Odos|Leoforos|Str\.)")
_UNIT_BODY = r"(?:(?:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Bldg|Building|Room(?=\s*\d+\w?\s*,))\.?\s*#?\s*[A-Za-z0-9-]+)"  # noqa: E501
_UNIT = rf"(?:,?\s*{_UNIT_BODY})"
_LINE_TAIL = r"(?:,?[ \t]*\p{Lu}[\p{L}'\u2019. -]{1,40})?(?:,?[ \t]*[A-Z]{2})?(?:[ \t]+\d{4,5}(?:-\d{3,4})?)?"


_NOT_A_UNIT_OF_MEASURE = (r"(?!\s*(?i:mg|mcg|\u00b5g|g|kg|ml|l|units?|iu|%|mmol|meq|tabs?|tablets?|caps?|capsules?|"
                          r"puffs?|drops?|times|x\b|hours?|hrs?|days?|weeks?|months?|years?|minutes?|mins?|am|pm|"
                          r"mmhg|bpm|cm|mm|in|lbs?|kg|oz)\b)")
# What may follow a street on the same or the next lines: units, town, state, postcode, country.
_TOWN_WORD = r"(?:\p{Lu}[\p{L}'\u2019.-]*|(?:de|del|do|da|du|la|di|dos|das|van|von|der|sur|upon|on)(?=[ \t]+\p{Lu}))"
_PIECE = (rf"(?:{_UNIT_BODY}|{_TOWN_WORD}(?:[ \t]+{_TOWN_WORD}){{0,3}}|\d{{3,6}}(?:-\d{{3,4}})?|"
          r"\([^)\n]{1,30}\)|nan)(?![\p{L}'\u2019]*[ \t]*:)")
_CONTINUATION = regex.compile(rf"(?:(?:[ \t]*,[ \t]*|[ \t]*\n[ \t]*|[ \t]+|[ \t]*\n[ \t]*\n[ \t]*(?=\p{{Lu}}[\p{{L}} ]+\d{{4,6}}))"  # noqa: E501
                              rf"{_PIECE})+", regex.VERSION1)


class StreetAddressRecognizer(RuleRecognizer):
    """"1234 N. Oak Street, Apt 5", "Villacher Strasse 89", "Rue de la Paix 12", "P.O. Box 287",
    "PSC 0413, Box 8144 APO AA 42323", "Suite 442" — with the town, state, postcode and country
    that follow on the same or the next lines."""

    RULES = (
        rule("STREET_ADDRESS", rf"(?<![\w/.-])(?:{_NUMBER}\s+){{1,2}}(?:(?:[NSEW]|North|South|East|West)\.?\s+)?"
                               rf"(?:{_WORD}\s+){{0,3}}{_US_SUFFIX}(?:\s+[NSEW]{{1,2}}\b)?{_UNIT}?", 0.85),
        rule("STREET_ADDRESS", rf"(?<![\w/.-])(?:{_NUMBER}\s+)?(?:{_WORD}[ -]){{0,2}}\p{{Lu}}[\p{{L}}-]*"
                               rf"(?i:{_EU_ENDINGS})\s*\d{{1,5}}[A-Za-z]?\b\.?{_UNIT}?", 0.8),
        rule("STREET_ADDRESS", rf"(?<![\w/.-])(?:{_NUMBER}\s+)?\p{{Lu}}[\p{{L}}-]*\s+(?i:{_EU_ENDINGS})\s*"
                               rf"\d{{1,5}}[A-Za-z]?\b\.?{_UNIT}?", 0.8),
        rule("STREET_ADDRESS", rf"(?<![\w/.-])(?:{_NUMBER},?\s+)?{_EU_PREFIXES}\s+(?:(?:de|del|della|di|da|do|dos|"
                               rf"des|du|la|le|les|l'|d')\s*)*(?:{_WORD}\s+){{0,3}}{_NUMBER}\b{_UNIT}?", 0.75),
        rule("STREET_ADDRESS", rf"(?<![\w/.,-])\d{{2,6}}[ \t]+(?:\p{{Lu}}[\p{{L}}'\u2019.-]*[ \t]+){{1,3}}\d{{1,5}}\b"
                               rf"{_NOT_A_UNIT_OF_MEASURE}{_UNIT}?", 0.6),
        rule("STREET_ADDRESS", r"(?<![\w-])(?:\d{1,6}\s+)?(?i:P\.?\s?O\.?\s*Box\s+\d+)", 0.85),
        rule("STREET_ADDRESS", r"\b(?:PSC|CMR|Unit|UNIT|unit|USNS|USNV|USS)\s+[\w ]{0,20}?\d{0,5},?\s+(?i:box)\s+\d{3,5}"  # noqa: E501
                               r"(?:\s+(?i:[AFD]PO)\s+(?i:A[AEP])\s+\d{5})?", 0.85),
        rule("STREET_ADDRESS", r"\b(?:USNS|USNV|USS)\s+\p{Lu}\w+(?:\s+(?i:[AFD]PO)\s+(?i:A[AEP])\s+\d{5})?", 0.8),
        rule("STREET_ADDRESS", r"\b(?i:[AFD]PO)\s+(?i:A[AEP])\s+\d{5}\b", 0.85),
        rule("STREET_ADDRESS", r"\b(?:Apt|Apartment|Suite|Ste|Unit)\.?\s*#?\s*\d+[A-Za-z]?\b", 0.6),
    )

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        results = super().analyze(text, entities, nlp_artifacts)
        for result in results:
            tail = _CONTINUATION.match(text, result.end)
            if tail:
                result.end = tail.end()
        return results


class CityStateZipRecognizer(RuleRecognizer):
    """"Springfield, IL 62704" and "Boston, MA" (the city is below the state: HIPAA removes it)."""

    RULES = (
        rule("LOCATION", rf"(?P<value>\p{{Lu}}[\p{{L}}'\u2019.-]*(?:[ \t]+\p{{Lu}}[\p{{L}}'\u2019.-]*){{0,3}}),[ \t]*{_STATE}"  # noqa: E501
                         r"(?:[ \t]+\d{5}(?:-\d{4})?)?\b", 0.75),
        rule("ZIP_CODE", rf"\b{_STATE}[ \t]+(?P<value>\d{{5}}(?:-\d{{4}})?)\b", 0.85),
    )


class PostalCodeRecognizer(RuleRecognizer):
    """Postal codes after a label ("ZIP: 02118", "postal code B0J 2H0")."""

    RULES = (
        rule("ZIP_CODE", r"(?i:\b(?:zip(?:\s*code)?|postal\s*code|post\s*code|postcode|plz)\b)\s*[:#]?\s*"
                         r"(?P<value>[A-Za-z0-9]{2,5}(?:[ -][A-Za-z0-9]{2,4})?)\b", 0.85),
    )


class AddressLabelRecognizer(RuleRecognizer):
    """What follows "Address:" / "lives at" / "resides at": to the end of the line, or the next
    few short lines of an address block."""

    RULES = (
        rule("LOCATION", r"(?i:\b(?:home\s+|mailing\s+|street\s+|permanent\s+|billing\s+)?address(?:es)?(?:\s+is)?"
                         r"\s*:)[ \t]*\n?[ \t]*(?P<value>[^\n]{3,80}(?:\n[ \t]*[^\n:]{2,40}){0,3})", 0.7),
        rule("LOCATION", r"(?i:\b(?:at|on|to|is)\s+the\s+corner\s+of\s+)(?P<value>[^\n.?!]{3,80}?)(?=[.?!]|\n|$|\s+(?:in|for|after)\s)",  # noqa: E501
             0.7),
        rule("LOCATION", r"(?i:\b(?:lives|living|resides|residing|reside|moved)\s+(?:at|on|in)\s+)(?P<value>"
                         r"(?:\d[\w-]*\s+)?\p{Lu}[\p{L}'\u2019.-]*(?:\s+\p{Lu}[\p{L}'\u2019.-]*|\s+\d{1,5}\b){0,4})", 0.7),  # noqa: E501
    )
