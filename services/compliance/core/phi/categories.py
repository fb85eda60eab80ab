"""Which HIPAA Safe Harbor category each entity type reported by the recognizers belongs to."""
from __future__ import annotations

HIPAA_CATEGORY: dict[str, str] = {
    "PERSON": "NAME",
    "LOCATION": "GEOGRAPHY", "STREET_ADDRESS": "GEOGRAPHY", "ZIP_CODE": "GEOGRAPHY",
    "DATE_TIME": "DATE",
    "AGE": "AGE_OVER_89",
    "PHONE_NUMBER": "PHONE_FAX",
    "EMAIL_ADDRESS": "EMAIL",
    "US_SSN": "SSN",
    "MEDICAL_RECORD_NUMBER": "MRN",
    "HEALTH_PLAN_ID": "HEALTH_PLAN",
    "ACCOUNT_NUMBER": "ACCOUNT", "CREDIT_CARD": "ACCOUNT", "IBAN_CODE": "ACCOUNT", "US_BANK_NUMBER": "ACCOUNT",
    "LICENSE_NUMBER": "LICENSE", "DEA_NUMBER": "LICENSE", "NPI": "LICENSE", "US_DRIVER_LICENSE": "LICENSE",
    "MEDICAL_LICENSE": "LICENSE",
    "VEHICLE_ID": "VEHICLE",
    "DEVICE_ID": "DEVICE",
    "URL": "URL",
    "IP_ADDRESS": "IP_ADDRESS",
    "ID": "OTHER_ID", "UUID": "OTHER_ID", "US_ITIN": "OTHER_ID", "US_PASSPORT": "OTHER_ID", "MAC_ADDRESS": "OTHER_ID",
    "CRYPTO": "OTHER_ID",
    "HOSPITAL": "FACILITY",
}


def category_of(entity_type: str) -> str:
    return HIPAA_CATEGORY.get(entity_type, f"other:{entity_type}")
