"""Hong Kong places: the clinic sites, districts, streets and housing estates patients live in.

Districts are the 18 District Council districts; "region" is the traditional
three-way split (Hong Kong Island, Kowloon, New Territories) used in addresses.
Street names and estates are real; flat, floor and building numbers are made up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

HONG_KONG = "Hong Kong"
KOWLOON = "Kowloon"
NEW_TERRITORIES = "New Territories"


@dataclass(frozen=True)
class District:
    name: str
    region: str
    areas: tuple[str, ...]
    streets: tuple[str, ...]
    estates: tuple[str, ...]


# fmt: off
DISTRICTS: dict[str, District] = {d.name: d for d in (
    District("Central and Western", HONG_KONG,
             ("Central", "Sheung Wan", "Sai Ying Pun", "Kennedy Town", "Mid-Levels"),
             ("Caine Road", "Des Voeux Road West", "Queen's Road West", "Bonham Road", "Hill Road",
              "Belcher's Street"),
             ()),
    District("Wan Chai", HONG_KONG, ("Wan Chai", "Causeway Bay", "Happy Valley", "Tai Hang"),
             ("Hennessy Road", "Lockhart Road", "Johnston Road", "Thomson Road",
              "Wong Nai Chung Road"),
             ()),
    District("Eastern", HONG_KONG,
             ("North Point", "Quarry Bay", "Tai Koo", "Shau Kei Wan", "Chai Wan"),
             ("King's Road", "Shau Kei Wan Road", "Java Road", "Electric Road", "Chai Wan Road"),
             ("Yiu Tung Estate", "Hing Wah Estate", "Oi Tung Estate")),
    District("Southern", HONG_KONG, ("Aberdeen", "Ap Lei Chau", "Pok Fu Lam", "Wong Chuk Hang"),
             ("Aberdeen Main Road", "Ap Lei Chau Main Street", "Pok Fu Lam Road"),
             ("Wah Fu Estate", "Lei Tung Estate", "Shek Pai Wan Estate")),
    District("Yau Tsim Mong", KOWLOON,
             ("Tsim Sha Tsui", "Jordan", "Yau Ma Tei", "Mong Kok", "Tai Kok Tsui"),
             ("Nathan Road", "Shanghai Street", "Portland Street", "Canton Road", "Tong Mi Road",
              "Reclamation Street"),
             ()),
    District("Sham Shui Po", KOWLOON,
             ("Sham Shui Po", "Cheung Sha Wan", "Shek Kip Mei", "Lai Chi Kok"),
             ("Cheung Sha Wan Road", "Lai Chi Kok Road", "Tai Nan Street", "Fuk Wing Street"),
             ("Shek Kip Mei Estate", "So Uk Estate", "Lai Kok Estate")),
    District("Kowloon City", KOWLOON,
             ("Kowloon City", "To Kwa Wan", "Hung Hom", "Ho Man Tin", "Kowloon Tong"),
             ("Prince Edward Road West", "Ma Tau Wai Road", "Waterloo Road", "To Kwa Wan Road"),
             ("Oi Man Estate", "Ka Wai Chuen", "Lok Man Sun Chuen")),
    District("Wong Tai Sin", KOWLOON,
             ("Wong Tai Sin", "Lok Fu", "Diamond Hill", "Tsz Wan Shan", "Choi Hung"),
             ("Lung Cheung Road", "Choi Hung Road", "Tsz Wan Shan Road", "Shatin Pass Road"),
             ("Lok Fu Estate", "Choi Hung Estate", "Tsz Ching Estate",
              "Upper Wong Tai Sin Estate")),
    District("Kwun Tong", KOWLOON,
             ("Kwun Tong", "Ngau Tau Kok", "Lam Tin", "Yau Tong", "Sau Mau Ping"),
             ("Hip Wo Street", "Hong Ning Road", "Ngau Tau Kok Road", "Tsui Ping Road",
              "Shun Lee Tsuen Road"),
             ("Ngau Tau Kok Estate", "Lam Tin Estate", "Shun Lee Estate", "Sau Mau Ping Estate")),
    District("Sha Tin", NEW_TERRITORIES, ("Sha Tin", "Tai Wai", "Fo Tan", "Ma On Shan"),
             ("Sha Tin Centre Street", "Tai Wai Road", "Ma On Shan Road", "Lek Yuen Street"),
             ("Lek Yuen Estate", "Sun Chui Estate", "Yiu On Estate", "Sha Kok Estate")),
    District("Tai Po", NEW_TERRITORIES, ("Tai Po", "Tai Po Market", "Tai Wo"),
             ("Kwong Fuk Road", "Ting Kok Road", "On Po Road"),
             ("Fu Heng Estate", "Kwong Fuk Estate", "Tai Yuen Estate")),
    District("Tsuen Wan", NEW_TERRITORIES, ("Tsuen Wan", "Lei Muk Shue", "Ma Wan"),
             ("Sha Tsui Road", "Tai Ho Road", "Yeung Uk Road", "Chung On Street"),
             ("Shek Wai Kok Estate", "Cheung Shan Estate", "Lei Muk Shue Estate")),
    District("Kwai Tsing", NEW_TERRITORIES, ("Kwai Chung", "Kwai Fong", "Tsing Yi"),
             ("Kwai Chung Road", "Hing Fong Road", "Tsing Yi Road", "Kwai Foo Road"),
             ("Kwai Fong Estate", "Cheung Ching Estate", "Shek Lei Estate")),
    District("Tuen Mun", NEW_TERRITORIES,
             ("Tuen Mun", "Siu Hong", "Butterfly Beach", "So Kwun Wat"),
             ("Tuen Mun Heung Sze Wui Road", "Tuen Hing Road", "Tsing Hoi Circuit",
              "Castle Peak Road"),
             ("Tai Hing Estate", "Yau Oi Estate", "Leung King Estate", "On Ting Estate")),
    District("Yuen Long", NEW_TERRITORIES, ("Yuen Long", "Tin Shui Wai", "Hung Shui Kiu"),
             ("Castle Peak Road", "Tai Tong Road", "Kau Yuk Road", "Tin Wah Road"),
             ("Tin Yiu Estate", "Long Ping Estate", "Tin Heng Estate")),
)}
# fmt: on


@dataclass(frozen=True)
class ClinicSite:
    """Where a clinic of the group stands and what it offers."""

    key: str
    name: str
    name_zh: str
    district: str
    area: str
    street_line: str
    building_line: str
    phone: str
    latitude: float
    longitude: float
    specialities: tuple[str, ...]
    #: Districts its patients mostly live in (its own first).
    catchment: tuple[str, ...]
    #: Share of the group's patients registered here.
    weight: int

    @property
    def region(self) -> str:
        return DISTRICTS[self.district].region


GROUP_NAME = "Kapok Tree Medical Group"
GROUP_NAME_ZH = "木棉樹醫療集團"
GROUP_CODE = "KTM"

# Mental health is offered at two clinics only: the group's psychiatrists are few.
# fmt: off
CLINIC_SITES: tuple[ClinicSite, ...] = (
    ClinicSite("central", "Kapok Tree Medical Centre (Central)", "木棉樹醫療中心（中環）",
               "Central and Western", "Central", "12/F, 38 Queen's Road Central", "Room 1203",
               "+852 2521 3380", 22.2819, 114.1582,
               ("general_practice", "womens_health", "mental_health", "dermatology"),
               ("Central and Western", "Wan Chai", "Southern"), 11),
    ClinicSite("causeway-bay", "Kapok Tree Medical Centre (Causeway Bay)",
               "木棉樹醫療中心（銅鑼灣）",
               "Wan Chai", "Causeway Bay", "9/F, 463 Hennessy Road", "Unit 902",
               "+852 2891 6620", 22.2800, 114.1838,
               ("general_practice", "paediatrics", "dental", "ophthalmology"),
               ("Wan Chai", "Eastern", "Southern"), 13),
    ClinicSite("tsim-sha-tsui", "Kapok Tree Medical Centre (Tsim Sha Tsui)",
               "木棉樹醫療中心（尖沙咀）",
               "Yau Tsim Mong", "Tsim Sha Tsui", "15/F, 132 Nathan Road", "Room 1508",
               "+852 2366 4127", 22.2988, 114.1722,
               ("general_practice", "dermatology", "ophthalmology", "physiotherapy"),
               ("Yau Tsim Mong", "Kowloon City", "Sham Shui Po"), 11),
    ClinicSite("mong-kok", "Kapok Tree Medical Centre (Mong Kok)", "木棉樹醫療中心（旺角）",
               "Yau Tsim Mong", "Mong Kok", "7/F, 83 Argyle Street", "Flat B",
               "+852 2394 7718", 22.3193, 114.1694,
               ("general_practice", "paediatrics", "womens_health", "dental"),
               ("Yau Tsim Mong", "Sham Shui Po", "Kowloon City", "Wong Tai Sin"), 14),
    ClinicSite("kwun-tong", "Kapok Tree Medical Centre (Kwun Tong)", "木棉樹醫療中心（觀塘）",
               "Kwun Tong", "Kwun Tong", "3/F, 65 Hip Wo Street", "Shop 305",
               "+852 2343 5096", 22.3119, 114.2257,
               ("general_practice", "physiotherapy", "mental_health", "dental"),
               ("Kwun Tong", "Wong Tai Sin", "Kowloon City"), 14),
    ClinicSite("sha-tin", "Kapok Tree Medical Centre (Sha Tin)", "木棉樹醫療中心（沙田）",
               "Sha Tin", "Sha Tin", "5/F, 18 Sha Tin Centre Street", "Room 510",
               "+852 2691 2284", 22.3817, 114.1877,
               ("general_practice", "paediatrics", "womens_health", "physiotherapy",
                "ophthalmology"),
               ("Sha Tin", "Tai Po"), 14),
    ClinicSite("tsuen-wan", "Kapok Tree Medical Centre (Tsuen Wan)", "木棉樹醫療中心（荃灣）",
               "Tsuen Wan", "Tsuen Wan", "6/F, 298 Sha Tsui Road", "Unit 601",
               "+852 2493 8851", 22.3711, 114.1130,
               ("general_practice", "paediatrics", "dermatology", "dental"),
               ("Tsuen Wan", "Kwai Tsing"), 11),
    ClinicSite("tuen-mun", "Kapok Tree Medical Centre (Tuen Mun)", "木棉樹醫療中心（屯門）",
               "Tuen Mun", "Tuen Mun", "2/F, 2 Tuen Mun Heung Sze Wui Road", "Shop 212",
               "+852 2458 3317", 22.3916, 113.9770,
               ("general_practice", "paediatrics", "womens_health", "physiotherapy"),
               ("Tuen Mun", "Yuen Long"), 12),
)
# fmt: on


def address(rng: random.Random, district_name: str) -> dict[str, Any]:
    """A home address in ``district_name``: a public estate flat or a private building."""
    district = DISTRICTS[district_name]
    floor = rng.randint(1, 38)
    flat = rng.choice("ABCDEFGH") if rng.random() < 0.6 else str(rng.randint(1, 24))
    if district.estates and rng.random() < 0.55:
        # Public housing: roughly half of Hong Kong lives in it, where there is any.
        estate = rng.choice(district.estates)
        block = rng.choice(("Block", "House")) + f" {rng.randint(1, 12)}"
        line = [f"Flat {flat}, {floor}/F, {block}", estate]
    else:
        line = [f"Flat {flat}, {floor}/F", f"{rng.randint(1, 480)} {rng.choice(district.streets)}"]
    return {
        "use": "home",
        "type": "physical",
        "line": line,
        "city": rng.choice(district.areas),
        "district": district.name,
        "state": district.region,
        "country": "HK",
    }


def site_address(site: ClinicSite) -> dict[str, Any]:
    return {
        "use": "work",
        "type": "both",
        "line": [site.building_line, site.street_line],
        "city": site.area,
        "district": site.district,
        "state": site.region,
        "country": "HK",
    }
