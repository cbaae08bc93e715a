"""Words a notice uses that come from data, not from its template: category names,
what happened in each tier, dates (pure)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from carevault.domain.categories import DataCategory

CATEGORY_WORDS: dict[str, dict[DataCategory, str]] = {
    "en": {
        DataCategory.IDENTITY: "your name",
        DataCategory.CONTACT: "your contact details (phone number, email address or home address)",
        DataCategory.DEMOGRAPHIC: "your date of birth, sex and preferred language",
        DataCategory.VISIT: "your appointments and visits to our clinics",
        DataCategory.GOVERNMENT_ID: "your identity document number (Hong Kong Identity Card or passport)",
        DataCategory.FINANCIAL: "your bills, insurance and payment records",
        DataCategory.CLINICAL: "your medical records (such as diagnoses, test results and doctors' notes)",
        DataCategory.MEDICATION: "your prescriptions and medicines",
        DataCategory.SENSITIVE_CLINICAL: "especially sensitive health information (such as mental or sexual health)",
        DataCategory.CREDENTIALS: "the details you use to sign in to our services",
    },
    "zh": {
        DataCategory.IDENTITY: "閣下的姓名",
        DataCategory.CONTACT: "閣下的聯絡資料（電話號碼、電郵地址或住址）",
        DataCategory.DEMOGRAPHIC: "閣下的出生日期、性別及慣用語言",
        DataCategory.VISIT: "閣下在本集團診所的預約及求診紀錄",
        DataCategory.GOVERNMENT_ID: "閣下的身份證明文件號碼（香港身份證或護照）",
        DataCategory.FINANCIAL: "閣下的帳單、保險及付款紀錄",
        DataCategory.CLINICAL: "閣下的醫療紀錄（例如診斷、檢驗結果及醫生筆記）",
        DataCategory.MEDICATION: "閣下的處方及藥物紀錄",
        DataCategory.SENSITIVE_CLINICAL: "特別敏感的健康資料（例如精神健康或性健康）",
        DataCategory.CREDENTIALS: "閣下登入本集團服務所用的資料",
    },
}

#: What happened, per tier, in words a patient understands.
HAPPENED: dict[str, dict[str, str]] = {
    "en": {
        "confirmed": "a person who was not entitled to see it opened records that contain your information",
        "decrypted": "an intruder got into our systems in a way that let them read records that contain your information",
        "at_rest_only": "a copy of encrypted records that contain your information was taken; the keys needed to read it were not",
        "potentially": "an intruder had access that could have reached your information; we cannot rule out that it was seen",
    },
    "zh": {
        "confirmed": "一名無權查閱的人士開啟了載有閣下資料的紀錄",
        "decrypted": "有入侵者進入了本集團的系統，並能夠讀取載有閣下資料的紀錄",
        "at_rest_only": "載有閣下資料的加密紀錄副本被取走，但讀取這些紀錄所需的密鑰並未外洩",
        "potentially": "有入侵者取得的權限可能接觸到閣下的資料，我們未能排除資料曾被查看",
    },
}

CHANNEL_WORDS = {
    "en": {"email": "email", "sms": "text message (SMS)", "letter": "letter by post"},
    "zh": {"email": "電郵", "sms": "手機短訊", "letter": "郵寄信件"},
}

SUBJECT = {
    "en": "Important: a data security incident involving your information",
    "zh": "重要通知：涉及閣下個人資料的資料保安事故",
}


def categories_in(language: str, categories: tuple[DataCategory, ...]) -> list[str]:
    words = CATEGORY_WORDS[language]
    order = list(DataCategory)
    return [words[c] for c in sorted(set(categories), key=order.index)]


def day(moment: datetime | None, language: str, zone: ZoneInfo) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    if language == "zh":
        return f"{local.year}年{local.month}月{local.day}日"
    return f"{local.day} {local:%B %Y}"


SHORT_WORDS: dict[str, dict[DataCategory, str]] = {
    "en": {
        DataCategory.IDENTITY: "name",
        DataCategory.CONTACT: "contact details",
        DataCategory.DEMOGRAPHIC: "date of birth",
        DataCategory.VISIT: "clinic visits",
        DataCategory.GOVERNMENT_ID: "ID number",
        DataCategory.FINANCIAL: "billing records",
        DataCategory.CLINICAL: "medical records",
        DataCategory.MEDICATION: "prescriptions",
        DataCategory.SENSITIVE_CLINICAL: "sensitive health records",
        DataCategory.CREDENTIALS: "sign-in details",
    },
    "zh": {
        DataCategory.IDENTITY: "姓名",
        DataCategory.CONTACT: "聯絡資料",
        DataCategory.DEMOGRAPHIC: "出生日期",
        DataCategory.VISIT: "求診紀錄",
        DataCategory.GOVERNMENT_ID: "身份證號碼",
        DataCategory.FINANCIAL: "帳單紀錄",
        DataCategory.CLINICAL: "醫療紀錄",
        DataCategory.MEDICATION: "處方紀錄",
        DataCategory.SENSITIVE_CLINICAL: "敏感健康紀錄",
        DataCategory.CREDENTIALS: "登入資料",
    },
}


def short_list(language: str, categories: tuple[DataCategory, ...]) -> str:
    words = SHORT_WORDS[language]
    order = list(DataCategory)
    items = [words[c] for c in sorted(set(categories), key=order.index)]
    if language == "zh":
        return "、".join(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
