#!/usr/bin/env python3
"""Writes a synthetic national directory of care resources as a registry import CSV.

    generate_directory.py ROWS OUT.csv [--seed N] [--queries QUERIES.jsonl]

Rows are spread over all 1,741 municipalities and skewed like population: designated cities and
Tokyo's special wards weigh most, then cities, towns, villages, with a Zipf-like spread inside
each group (the project ships no population table, so this approximates the real skew). The
category mix follows DOMAIN.md §3 (long-term care and medical most common). With --queries it
also writes search requests for the benchmark, drawn with the same skew.
"""
import argparse
import csv
import json
import pathlib
import random

HERE = pathlib.Path(__file__).resolve().parent
CODES = HERE.parent.parent / "services" / "registry" / "seed" / "jisx0402-local-government-codes.csv"
DESIGNATED = {"011002", "041009", "111007", "121002", "141003", "141305", "141500", "151009", "221007", "221309",
              "231002", "261009", "271004", "271403", "281000", "331007", "341002", "401005", "401307", "431001"}
CATEGORIES = {
    "medical": (25, ["family_doctor", "clinic_with_beds", "psychiatric_day_care", "psychiatric_home_nursing", "dental",
                     "pharmacy", "hospital_acute", "hospital_recovery", "hospital_chronic", "psychiatric_institution"]),
    "disability_welfare": (20, ["home_care", "daily_life_care", "short_stay", "continuous_employment_support_b",
                                "independence_training_daily_living", "employment_transition_support", "group_home",
                                "community_life_support_hub"]),
    "long_term_care": (30, ["home_help", "home_nursing", "day_service", "small_multifunctional_care", "short_stay_care",
                            "welfare_equipment", "special_nursing_home", "geriatric_health_facility", "dementia_group_home"]),
    "housing": (4, ["public_housing", "serviced_elderly_housing", "housing_support_corporation"]),
    "consultation": (8, ["municipal_window", "core_consultation_center", "community_general_support_center",
                         "specific_consultation_support_provider"]),
    "participation_employment": (6, ["employer", "peer_support"]),
    "mutual_help": (5, ["neighbourhood_association", "volunteer", "npo"]),
    "awareness": (2, ["public_education"]),
}
STAY_KINDS = {"group_home", "short_stay", "short_stay_care", "special_nursing_home", "geriatric_health_facility",
              "dementia_group_home", "clinic_with_beds"}
SYLLABLES = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわ"
HEADER = ["external_id", "organization", "name", "kana", "category_code", "kinds", "municipality_code", "postal_code",
          "address", "latitude", "longitude", "phone", "access_modes", "capacity", "vacancies", "consultation_types"]


def municipalities():
    out = []
    with CODES.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if not row["city"]:
                continue
            name = row["city"]
            if row["code"] in DESIGNATED:
                group = 40.0
            elif row["code"].startswith("131") and name.endswith("区"):
                group = 25.0
            elif name.endswith("市"):
                group = 6.0
            elif name.endswith("町"):
                group = 1.5
            else:
                group = 0.5
            out.append((row["code"], row["prefecture"], name, group))
    return out


def weights(items, rng):
    order = list(range(len(items)))
    rng.shuffle(order)
    rank = {index: r + 1 for r, index in enumerate(order)}
    return [item[3] / (rank[i] ** 0.3) for i, item in enumerate(items)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--queries")
    parser.add_argument("--query-count", type=int, default=20000)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    places = municipalities()
    place_weights = weights(places, rng)
    categories = list(CATEGORIES)
    category_weights = [CATEGORIES[c][0] for c in categories]
    with open(args.out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        chosen = rng.choices(places, weights=place_weights, k=args.rows)
        for index, (code, prefecture, city, _) in enumerate(chosen):
            category = rng.choices(categories, weights=category_weights)[0]
            kind = rng.choice(CATEGORIES[category][1])
            word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 5)))
            stay = kind in STAY_KINDS
            capacity = rng.randint(4, 80) if stay else None
            writer.writerow([
                f"bench-{index:07d}", f"{city}{word}会", f"{word}{kind}{index % 97}", word, category, kind, code,
                f"{rng.randint(100, 999)}-{rng.randint(0, 9999):04d}", f"{prefecture}{city}{rng.randint(1, 30)}丁目{rng.randint(1, 40)}番",
                f"{rng.uniform(24.0, 45.5):.5f}", f"{rng.uniform(123.0, 146.0):.5f}", f"0{rng.randint(100000000, 999999999)}",
                "stay" if stay else rng.choice(["visit", "visit|home_visit", "home_visit"]),
                capacity if capacity is not None else "", rng.randint(0, capacity // 4) if capacity else "",
                rng.choice(["general", "disability", "elderly", "general|disability"]) if category == "consultation" else "",
            ])
    if args.queries:
        with open(args.queries, "w", encoding="utf-8") as handle:
            for place in rng.choices(places, weights=place_weights, k=args.query_count):
                category = rng.choices(categories, weights=category_weights)[0]
                handle.write(json.dumps({"area": place[0], "category_code": category, "limit": 20}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
