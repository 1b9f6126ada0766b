"""Demo data: the preset products, three branches with opening hours and counters, 60 cards with
varied balances, deposits, transaction counts, outstanding fees, SIM plans and app bindings, and
holders with valid-format Chinese resident ID, HKID and passport numbers. The cards are the same
at every load (numbers, holders and amounts come from one seed) and loading twice changes
nothing; dates count back from the day of the load, so a travel SIM's plan is running when the
demo starts, whatever the date."""

from __future__ import annotations

import random
from datetime import date, time, timedelta

from django.db import transaction
from stdnum.cn import ric

from closeout.appointments.models import Branch, Counter, OpeningHours
from closeout.cards import services as cards
from closeout.cards.models import Card
from closeout.catalog.models import Product, RefundPolicy
from closeout.catalog.presets import PRODUCTS
from closeout.closures.services import card_balances
from closeout.common import clock
from closeout.common.money import Money
from closeout.identity import documents, vault

SEED = 20261125
AREAS = ["110101", "110102", "110105", "310101", "310104"]  # valid for births 1960-1999
SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴"]
GIVEN = ["伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "勇", "嘉欣", "志明"]
EN_NAMES = ["Alex Wong", "Priya Nair", "Tom Becker", "Mei Tanaka", "Chan Tai Man", "Sara Lopez", "Ken Ito"]
PARTNERS = ["maps-app", "transit-wallet", "city-pay"]
# Minor units by currency exponent: HKD/CNY cents, JPY yen.
BALANCES = {2: [0, 500, 12000, 45000, 95000, 180000, 290000], 0: [0, 180, 1500, 4200, 9800, 19000]}
SIM_CREDIT = [0, 500, 2000, 8800]  # prepaid call/data credit left on a SIM, HKD cents
WEEKDAYS, SATURDAY, SUNDAY = range(5), 5, 6
# (code, (English, simplified, traditional) names, the same three addresses, holiday calendar,
#  {weekday: (opens, closes)}, counters)
BRANCHES = [
    ("HK-CEN", ("Central customer service centre", "中环客务中心", "中環客務中心"),
     ("G/F, 1 Demo Street, Central", "中环示范街1号地下", "中環示範街1號地下"),
     "HK", {**dict.fromkeys(WEEKDAYS, (9, 19)), SATURDAY: (9, 13)}, ["A", "B", "C"]),
    ("HK-MKK", ("Mong Kok customer service centre", "旺角客务中心", "旺角客務中心"),
     ("Shop 2, 8 Sample Road, Mong Kok", "旺角样本道8号2号铺", "旺角樣本道8號2號舖"),
     "HK", {**dict.fromkeys(WEEKDAYS, (10, 20)), SATURDAY: (10, 18), SUNDAY: (11, 17)}, ["A", "B"]),
    ("SZ-FT", ("Shenzhen Futian service hall", "深圳福田营业厅", "深圳福田營業廳"),
     ("1F, 6 Example Avenue, Futian, Shenzhen", "深圳市福田区示例大道6号1楼", "深圳市福田區示例大道6號1樓"),
     "CN", dict.fromkeys(WEEKDAYS, (9, 18)), ["1", "2"]),
]


def products_load() -> dict[str, Product]:
    out = {}
    for spec in PRODUCTS:
        policy, _ = RefundPolicy.objects.get_or_create(
            code=spec["policy"]["code"], defaults={"name": spec["policy"]["name"], "rules": spec["policy"]["rules"]}
        )
        fields = {k: v for k, v in spec.items() if k not in ("policy", "deposit", "code")}
        product, _ = Product.objects.get_or_create(
            code=spec["code"],
            defaults={**fields, "deposit_minor": spec["deposit"], "policy": policy,
                      "allowed_channels": ["web", "phone", "email", "chat", "branch", "partner_api"]},
        )
        out[product.code] = product
    return out


def _card_number(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + documents.luhn_check_digit(body)


def _id_document(rng: random.Random, i: int) -> tuple[str, str]:
    kind = ("cn_resident_id", "hkid", "passport")[i % 3]
    if kind == "cn_resident_id":
        born = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 40 * 365))
        body = rng.choice(AREAS) + born.strftime("%Y%m%d") + f"{rng.randrange(0, 1000):03d}"
        return kind, body + ric.calc_check_digit(body + "0")
    if kind == "hkid":
        letter = rng.choice("ACDEGHKPRYZ")
        digits = f"{rng.randrange(0, 10**6):06d}"
        return kind, letter + digits + documents.hkid_check_digit(letter, digits)
    return kind, rng.choice(["E", "K", "G"]) + f"{rng.randrange(0, 10**8):08d}"


def _name(rng: random.Random, i: int) -> tuple[str, str]:
    if i % 3 == 2:
        return rng.choice(EN_NAMES), "en"
    return rng.choice(SURNAMES) + rng.choice(GIVEN), ("zh-hans" if i % 3 == 0 else "zh-hant")


def branches_load() -> int:
    """Add the demo branches with their opening hours and counters; return how many were new."""
    created = 0
    for code, names, addresses, calendar, hours, counters in BRANCHES:
        branch, new = Branch.objects.get_or_create(code=code, defaults={
            **dict(zip(("name", "name_zh_hans", "name_zh_hant"), names, strict=True)),
            **dict(zip(("address", "address_zh_hans", "address_zh_hant"), addresses, strict=True)), "calendar": calendar})
        if not new:
            continue
        created += 1
        OpeningHours.objects.bulk_create(OpeningHours(branch=branch, weekday=day, opens=time(opens), closes=time(closes))
                                         for day, (opens, closes) in hours.items())
        Counter.objects.bulk_create(Counter(branch=branch, label=label) for label in counters)
    return created


@transaction.atomic
def demo_data_load(count: int = 60) -> int:
    """Load the demo products, branches and cards; return how many cards were created."""
    from closeout.integrations.partners.services import partners_demo_load

    products = products_load()
    partners_demo_load()
    branches_load()
    rng = random.Random(SEED)
    now = clock.now()
    created = 0
    codes = ["OCTO", "OCTO", "SUICA", "YKT", "TSIM", "ESIM"]
    for i in range(count):
        # Every draw of card i happens whether or not the card exists already, so a second load
        # meets the same cards in the same order (and creates none).
        product = products[codes[i % len(codes)]]
        sim = product.kind != Product.Kind.STORED_VALUE
        number = _card_number(rng, product.number_prefix, 19 if sim else 16)
        id_type, id_number = _id_document(rng, i)
        name, language = _name(rng, i)
        email, phone = f"holder{i:03d}@demo.closeout.test", f"+852{rng.randrange(5, 10)}{rng.randrange(0, 10**7):07d}"
        exp = 0 if product.currency == "JPY" else 2
        balance = Money(rng.choice(SIM_CREDIT if sim else BALANCES[exp]), product.currency)
        issued_days = rng.choice([20, 60, 200, 800, 1500])
        issued_at = now - timedelta(days=issued_days)
        last_used = issued_at + timedelta(days=rng.randrange(0, issued_days)) if i % 5 else None
        plan_started = now - timedelta(days=rng.randrange(1, 25))
        plan_price, plan_mb, plan_used = rng.choice([9800, 16800, 28800]), rng.choice([5120, 10240, 20480]), \
            rng.randrange(0, 4096)
        transactions = rng.randrange(0, 400)
        fee = Money(rng.choice([1500, 3000, 250000]) if exp else rng.choice([300, 1200]), product.currency)
        if Card.objects.filter(number=number).exists():
            continue
        holder = cards.holder_create(name=name, id_type=id_type, id_number=id_number, email=email, phone=phone,
                                     language=language)
        plan = dict(plan_price_minor=plan_price, plan_starts_at=plan_started, plan_ends_at=plan_started + timedelta(
            days=30), plan_data_mb=plan_mb, plan_data_used_mb=plan_used) if sim else {}
        card = cards.card_issue(
            number=number, product=product, holder=holder, issued_at=issued_at, balance=balance,
            physical=product.kind != Product.Kind.ESIM, transaction_count=transactions,
            last_used_at=last_used, original_payment_ref=f"pi_demo{number[-10:]}" if i % 2 else "", **plan,
        )
        if i % 7 == 3:
            overdraft = i % 2 and not sim  # a negative value after a ride is a transit card's debt
            cards.card_charge_add(card=card, code="overdraft" if overdraft else "unpaid_fee",
                                  reason="negative value after the last ride" if overdraft else "annual fee unpaid",
                                  amount=fee)
        if i % 4 == 1:
            for partner in PARTNERS[: 1 + i % 3]:
                cards.binding_add(card=card, partner=partner, external_ref=f"{partner}-{card.id:05d}")
        created += 1
    return created


def demo_cards() -> list[dict]:
    """Return the cards a tester can try, in the public --list-json shape."""
    out = []
    for card in Card.objects.select_related("holder", "product").order_by("id"):
        holder = card.holder
        if not holder.data_key:
            continue
        contact = cards.holder_contact(holder)
        balance, _ = card_balances(card)
        outstanding = sum(c.amount_minor for c in card.charges.filter(settled_at__isnull=True))
        out.append({
            "number": card.number,
            "product": card.product.code,
            "product_kind": card.product.kind,
            "holder_name": holder.name,
            "id_document": {"type": holder.id_type,
                            "number": vault.decrypt(holder.data_key, holder.id_encrypted, context="id")},
            "contact": {"email": contact.get("email"), "phone": contact.get("phone")},
            "balance": balance.minor,
            "currency": card.product.currency,
            "outstanding_fees": outstanding,
            "physical": card.physical,
            # Whether the card must be posted back before the refund (`card-received` then moves
            # the case on): physical cards of some products only (transit cards like Octopus).
            "return_required": card.physical and card.product.physical_return_required,
            "status": card.status,
        })
    return out
