"""Hong Kong names: Cantonese names in characters and Government romanisation, and the rest.

Chinese residents carry a surname and (mostly) a two-character given name, written in
Traditional Chinese and romanised the Hong Kong Government way ("Chan Tai Man"), and
many also use a Western given name ("Peter"). About one resident in twelve is not
ethnically Chinese: foreign domestic helpers from the Philippines and Indonesia, South
Asian families, and Western expatriates. They have no Chinese name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

LANGUAGE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/language"

#: (characters, romanisation, weight): weights are rough shares per thousand residents.
SURNAMES: tuple[tuple[str, str, int], ...] = (
    ("陳", "Chan", 80), ("黃", "Wong", 60), ("李", "Lee", 50), ("張", "Cheung", 40),
    ("梁", "Leung", 38), ("林", "Lam", 30), ("劉", "Lau", 30), ("何", "Ho", 25),
    ("吳", "Ng", 22), ("鄭", "Cheng", 18), ("楊", "Yeung", 15), ("周", "Chow", 15),
    ("羅", "Law", 14), ("曾", "Tsang", 14), ("鄧", "Tang", 14), ("葉", "Yip", 13),
    ("王", "Wong", 12), ("郭", "Kwok", 12), ("馮", "Fung", 12), ("譚", "Tam", 12),
    ("蔡", "Choi", 11), ("麥", "Mak", 10), ("朱", "Chu", 10), ("盧", "Lo", 10),
    ("黎", "Lai", 9), ("許", "Hui", 9), ("謝", "Tse", 9), ("李", "Li", 8), ("余", "Yu", 8),
    ("潘", "Poon", 8), ("鍾", "Chung", 8), ("胡", "Wu", 7), ("袁", "Yuen", 7),
    ("關", "Kwan", 6), ("蕭", "Siu", 6), ("莫", "Mok", 6), ("馬", "Ma", 6), ("彭", "Pang", 6),
    ("江", "Kong", 5), ("方", "Fong", 5), ("唐", "Tong", 5), ("區", "Au", 5), ("趙", "Chiu", 5),
    ("高", "Ko", 5), ("溫", "Wan", 5), ("杜", "To", 4), ("施", "Sze", 4), ("姚", "Yiu", 4),
    ("文", "Man", 4), ("呂", "Lui", 4), ("岑", "Shum", 3), ("石", "Shek", 3), ("韓", "Hon", 3),
    ("孔", "Hung", 3), ("嚴", "Yim", 3), ("容", "Yung", 3), ("雷", "Lui", 3), ("顏", "Ngan", 3),
    ("歐陽", "Au Yeung", 3), ("司徒", "Szeto", 3), ("卓", "Cheuk", 2), ("駱", "Lok", 2),
)  # fmt: skip

#: Given-name syllables (character, romanisation), by the sex they are mostly given to.
MALE_SYLLABLES: tuple[tuple[str, str], ...] = (
    ("大", "Tai"), ("文", "Man"), ("志", "Chi"), ("明", "Ming"), ("偉", "Wai"), ("家", "Ka"),
    ("俊", "Chun"), ("國", "Kwok"), ("強", "Keung"), ("建", "Kin"), ("華", "Wah"),
    ("榮", "Wing"), ("傑", "Kit"), ("浩", "Ho"), ("子", "Tsz"), ("朗", "Long"), ("軒", "Hin"),
    ("耀", "Yiu"), ("輝", "Fai"), ("成", "Shing"), ("永", "Wing"), ("樂", "Lok"), ("天", "Tin"),
    ("宇", "Yu"), ("錦", "Kam"), ("德", "Tak"), ("振", "Chun"), ("柏", "Pak"), ("卓", "Cheuk"),
    ("維", "Wai"), ("信", "Shun"), ("康", "Hong"), ("豪", "Ho"), ("雄", "Hung"), ("基", "Kei"),
    ("沛", "Pui"), ("駿", "Chun"), ("希", "Hei"), ("健", "Kin"), ("銘", "Ming"), ("業", "Yip"),
    ("達", "Tat"), ("亮", "Leung"), ("嘉", "Ka"), ("智", "Chi"), ("鴻", "Hung"), ("啟", "Kai"),
    ("霖", "Lam"), ("斌", "Pan"), ("峰", "Fung"),
)  # fmt: skip
FEMALE_SYLLABLES: tuple[tuple[str, str], ...] = (
    ("嘉", "Ka"), ("欣", "Yan"), ("美", "Mei"), ("玲", "Ling"), ("慧", "Wai"), ("詩", "Sze"),
    ("穎", "Wing"), ("麗", "Lai"), ("芳", "Fong"), ("婷", "Ting"), ("雅", "Nga"), ("淑", "Shuk"),
    ("儀", "Yee"), ("秀", "Sau"), ("珍", "Chun"), ("蓮", "Lin"), ("鳳", "Fung"), ("碧", "Pik"),
    ("燕", "Yin"), ("愛", "Oi"), ("凱", "Hoi"), ("琪", "Kei"), ("綺", "Yee"), ("曉", "Hiu"),
    ("彤", "Tung"), ("晴", "Ching"), ("瑩", "Ying"), ("潔", "Kit"), ("翠", "Chui"), ("佩", "Pui"),
    ("詠", "Wing"), ("思", "Sze"), ("月", "Yuet"), ("芷", "Tsz"), ("寶", "Po"), ("敏", "Man"),
    ("恩", "Yan"), ("悅", "Yuet"), ("靜", "Ching"), ("君", "Kwan"), ("妍", "Yin"), ("心", "Sum"),
    ("瑜", "Yu"), ("晞", "Hei"), ("蔚", "Wai"), ("巧", "Hau"), ("婉", "Yuen"), ("玉", "Yuk"),
)  # fmt: skip
#: Whole given names typical of women born before about 1955.
ELDERLY_FEMALE_GIVEN: tuple[tuple[str, str], ...] = (
    ("金好", "Kam Ho"), ("月娥", "Yuet Ngo"), ("亞妹", "Ah Mui"), ("秀英", "Sau Ying"),
    ("桂芳", "Kwai Fong"), ("玉蓮", "Yuk Lin"), ("少珍", "Siu Chun"), ("瑞香", "Sui Heung"),
    ("帶娣", "Tai Tai"), ("惠芬", "Wai Fun"), ("麗華", "Lai Wah"), ("銀嬌", "Ngan Kiu"),
)  # fmt: skip
ELDERLY_MALE_SYLLABLES: tuple[tuple[str, str], ...] = (
    ("炳", "Ping"), ("福", "Fuk"), ("根", "Kan"), ("培", "Pui"), ("祥", "Cheung"), ("發", "Fat"),
    ("生", "Sang"), ("昌", "Cheong"), ("添", "Tim"), ("權", "Kuen"), ("泉", "Chuen"),
    ("興", "Hing"),
)  # fmt: skip

#: Western given names by generation: Hong Kong parents' choices shifted over time.
WESTERN_MALE = (
    "Peter",
    "David",
    "Jason",
    "Kenneth",
    "Eric",
    "Michael",
    "Raymond",
    "Alan",
    "Kelvin",
    "Ivan",
    "Ricky",
    "Tommy",
    "Samuel",
    "Alex",
    "Wilson",
    "Dickson",
    "Vincent",
    "Anthony",
    "Gary",
    "Terry",
    "Louis",
    "Patrick",
    "Stephen",
    "Frankie",
)
WESTERN_FEMALE = (
    "Mary",
    "Winnie",
    "Carmen",
    "Fiona",
    "Cherry",
    "Iris",
    "Vivian",
    "Karen",
    "Joyce",
    "Queenie",
    "Yvonne",
    "Peggy",
    "Mandy",
    "Cindy",
    "Kitty",
    "Tiffany",
    "Sharon",
    "Rachel",
    "Jessica",
    "Grace",
    "Christine",
    "Agnes",
    "Irene",
    "Janet",
)
WESTERN_CHILD_MALE = (
    "Ethan",
    "Lucas",
    "Hayden",
    "Jayden",
    "Marcus",
    "Aaron",
    "Ryan",
    "Oscar",
    "Isaac",
    "Nathan",
    "Dylan",
    "Matthew",
)
WESTERN_CHILD_FEMALE = ("Chloe", "Hailey", "Kayla", "Sophie", "Emma", "Natalie", "Zoe", "Charlotte",
                        "Olivia", "Kristy", "Bella", "Audrey")  # fmt: skip

#: Residents who are not ethnically Chinese: (origin, weight per thousand patients).
ORIGINS: tuple[tuple[str, float], ...] = (
    ("chinese", 920), ("filipino", 25), ("indonesian", 20), ("nepali", 7), ("indian", 7),
    ("pakistani", 4), ("western", 17),
)  # fmt: skip
_NON_CHINESE_GIVEN: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # origin: (male given names, female given names)
    "filipino": (("Jose", "Mark", "John Paul", "Ramon", "Eduardo", "Jerome", "Rodel"),
                 ("Maria", "Jennifer", "Joy", "Marites", "Rowena", "Liza", "Analyn", "Cristina",
                  "Rosalie", "Lorna", "Jocelyn", "Mary Grace")),
    "indonesian": (("Agus", "Budi", "Eko", "Joko"),
                   ("Siti", "Sri", "Dewi", "Nur", "Ani", "Sumiati", "Wahyuni", "Yuli", "Rina",
                    "Lestari", "Sulastri", "Tutik")),
    "nepali": (("Bishnu", "Ram", "Hari", "Prakash", "Suman", "Dil"),
               ("Sita", "Gita", "Kamala", "Sunita", "Maya", "Bimala")),
    "indian": (("Amit", "Rahul", "Harjit", "Vikram", "Sanjay", "Arjun"),
               ("Priya", "Anjali", "Harpreet", "Neha", "Kavita", "Deepa")),
    "pakistani": (("Muhammad", "Imran", "Bilal", "Asif", "Tariq"),
                  ("Ayesha", "Fatima", "Nasreen", "Sana", "Zainab")),
    "western": (("James", "Oliver", "Thomas", "William", "Daniel", "George", "Henry", "Edward"),
                ("Charlotte", "Emily", "Sophie", "Olivia", "Hannah", "Alice", "Lucy", "Claire")),
}  # fmt: skip
_NON_CHINESE_FAMILY: dict[str, tuple[str, ...]] = {
    "filipino": ("Santos", "Reyes", "Cruz", "Bautista", "Garcia", "Mendoza", "Villanueva",
                 "Dela Cruz", "Ramos", "Aquino", "Castillo", "Flores"),
    # Many Indonesians have no family name: a second given name stands in its place.
    "indonesian": ("Aminah", "Rahayu", "Wulandari", "Susanti", "Handayani", "Fitriani",
                   "Purwanti", "Ningsih"),
    "nepali": ("Gurung", "Rai", "Limbu", "Thapa", "Tamang", "Magar"),
    "indian": ("Singh", "Sharma", "Patel", "Gill", "Mehta", "Nair"),
    "pakistani": ("Khan", "Ahmed", "Hussain", "Ali", "Malik"),
    "western": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Thomas",
                "Roberts", "Walker", "Wright", "Hughes"),
}  # fmt: skip
#: BCP-47 languages each origin most often speaks with the clinic (Chinese: see patients).
ORIGIN_LANGUAGES: dict[str, tuple[str, ...]] = {
    "filipino": ("en", "tl"), "indonesian": ("id",), "nepali": ("ne", "en"),
    "indian": ("en", "hi"), "pakistani": ("ur", "en"), "western": ("en",),
}  # fmt: skip

_SURNAME_CUMULATIVE = list(accumulate(weight for _, _, weight in SURNAMES))
_ORIGIN_CUMULATIVE = list(accumulate(weight for _, weight in ORIGINS))


@dataclass(frozen=True)
class PersonName:
    """A person's names: the romanised legal name, a Western name, the Chinese name."""

    family: str | None
    given: tuple[str, ...]
    origin: str = "chinese"
    western: str | None = None
    family_zh: str | None = None
    given_zh: str | None = None

    @property
    def official(self) -> str:
        """The legal name as printed in English: family name first for Chinese names."""
        if self.origin == "chinese":
            return " ".join([self.family or "", *self.given]).strip()
        return " ".join([*self.given, self.family or ""]).strip()

    @property
    def chinese(self) -> str | None:
        if self.family_zh is None or self.given_zh is None:
            return None
        return self.family_zh + self.given_zh

    @property
    def display(self) -> str:
        """How people address the person: "Peter Chan" when there is a Western name."""
        if self.western is not None and self.family is not None:
            return f"{self.western} {self.family}"
        return self.official

    def texts(self) -> list[str]:
        """Every written form of the name, e.g. to look for it in raw storage."""
        forms = [self.official]
        if self.western is not None:
            forms.append(self.display)
        if self.chinese is not None:
            forms.append(self.chinese)
        return forms

    def username_stem(self) -> str:
        """``chan.taiman``: family then given names, lower case, letters only."""
        family = "".join(ch for ch in (self.family or "") if ch.isalpha()).lower()
        given = "".join(ch for ch in "".join(self.given) if ch.isalpha()).lower()
        return f"{family}.{given}" if family else given

    def human_names(self, prefix: str | None = None) -> list[dict[str, Any]]:
        """FHIR HumanNames: official English, then Western (usual), then Chinese.

        The Chinese name carries the standard ``language`` extension set to
        ``zh-Hant`` (Traditional Chinese), as the English one is implicitly ``en``.
        """
        official: dict[str, Any] = {"use": "official", "text": self.official}
        if self.family is not None:
            official["family"] = self.family
        official["given"] = list(self.given)
        if prefix is not None:
            official["prefix"] = [prefix]
        names = [official]
        if self.western is not None and self.family is not None:
            names.append({"use": "usual", "text": self.display, "family": self.family,
                          "given": [self.western]})  # fmt: skip
        if self.family_zh is not None and self.given_zh is not None:
            names.append({
                "extension": [{"url": LANGUAGE_EXTENSION, "valueCode": "zh-Hant"}],
                "use": "official", "text": self.family_zh + self.given_zh,
                "family": self.family_zh, "given": [self.given_zh],
            })  # fmt: skip
        return names


def pick_origin(rng: random.Random) -> str:
    return rng.choices([o for o, _ in ORIGINS], cum_weights=_ORIGIN_CUMULATIVE)[0]


def _given_chinese(rng: random.Random, female: bool, birth_year: int) -> tuple[str, str]:
    if female and birth_year < 1955 and rng.random() < 0.6:
        return rng.choice(ELDERLY_FEMALE_GIVEN)
    pool = FEMALE_SYLLABLES if female else MALE_SYLLABLES
    first = rng.choice(pool)
    if not female and birth_year < 1960 and rng.random() < 0.5:
        second = rng.choice(ELDERLY_MALE_SYLLABLES)
    else:
        second = rng.choice(pool)
        while second[0] == first[0]:
            second = rng.choice(pool)
    return first[0] + second[0], f"{first[1]} {second[1]}"


def _western_given(rng: random.Random, female: bool, birth_year: int) -> str | None:
    # Western names are common among people schooled from the 1960s on; rarer among the elderly.
    chance = 0.12 if birth_year < 1955 else 0.45
    if rng.random() >= chance:
        return None
    if birth_year >= 2005:
        return rng.choice(WESTERN_CHILD_FEMALE if female else WESTERN_CHILD_MALE)
    return rng.choice(WESTERN_FEMALE if female else WESTERN_MALE)


def chinese_name(rng: random.Random, female: bool, birth_year: int) -> PersonName:
    family_zh, family, _ = rng.choices(SURNAMES, cum_weights=_SURNAME_CUMULATIVE)[0]
    given_zh, given = _given_chinese(rng, female, birth_year)
    return PersonName(
        family=family,
        given=(given,),
        western=_western_given(rng, female, birth_year),
        family_zh=family_zh,
        given_zh=given_zh,
    )


def non_chinese_name(rng: random.Random, female: bool, origin: str) -> PersonName:
    male_given, female_given = _NON_CHINESE_GIVEN[origin]
    given = rng.choice(female_given if female else male_given)
    family = rng.choice(_NON_CHINESE_FAMILY[origin])
    if origin == "indonesian":
        # Mononyms are common; two-part names have no family name either.
        parts = (given,) if rng.random() < 0.4 else (given, family)
        return PersonName(family=None, given=parts, origin=origin)
    return PersonName(family=family, given=(given,), origin=origin)


def person_name(rng: random.Random, female: bool, birth_year: int, origin: str) -> PersonName:
    if origin == "chinese":
        return chinese_name(rng, female, birth_year)
    return non_chinese_name(rng, female, origin)
