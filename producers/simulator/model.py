"""The hub simulator's pure model: seeded, realistic traffic for the Liège hub (LGG / BELGG).

``simulate(config)`` builds every parcel's journey on one lane, consolidates parcels into bags and
bags into ULDs (air) or containers (rail, sea), then decides when each carrier's system would
publish each record. It returns the records in publish order and the ground truth per parcel, which
tests of the stream processor compare their results with. No I/O, no wall clock (unless
``start_ms`` is left unset): the same config gives the same output.

Lanes (``LANES``):
- ``air``: Hangzhou warehouse → cargo flight HGH→LGG (China Cargo CK / Air China Cargo CA, ~12 h)
- ``rail``: Chongqing or Xi'an → block train via Małaszewicze → Liège (~16–20 days)
- ``sea``: Ningbo → vessel to Antwerp (BEANR, ~30 days) → truck to LGG
- ``export``: Belgian SME → LGG hub → flight LGG→HGH → China Post last mile
Import lanes then pass import customs at LGG, hub sortation and a last-mile carrier.
"""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from producers.formats.code_maps import normalise
from producers.simulator.identifiers import make_awb, make_container_number, make_tracking_number

MINUTE: Final = 60_000
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

LANES: Final = ("air", "rail", "sea", "export")
IMPORT_LANES: Final = ("air", "rail", "sea")
#: Parcels per simulation: more would not fit the records comfortably in memory.
MAX_PARCELS: Final = 200_000

RecordKind = Literal["scan", "manifest"]


@dataclass(frozen=True)
class AnomalyRates:
    """Probabilities of the things that go wrong, each per the unit named in its comment."""

    delayed_flight: float = 0.1  # per linehaul departure (flight, train or vessel): leaves hours/days late
    lost_bag: float = 0.01  # per bag: goes missing after the linehaul; its parcels get no further scan
    missort: float = 0.03  # per import parcel: sorted to the wrong carrier's lane, then re-sorted
    duplicate_scan: float = 0.02  # per scan: the same event id is sent twice
    out_of_order: float = 0.02  # per scan: sent after the next scan of the same parcel or unit
    late_scan: float = 0.02  # per scan: device offline, sent hours after the event
    container_scan_before_manifest: float = 0.2  # per ULD/container: its manifest is sent after its arrival
    customs_hold: float = 0.05  # per parcel: held by import customs with a reason, released later
    failed_attempt: float = 0.08  # per parcel: a delivery attempt fails (not at home, address problem)
    pickup_point: float = 0.1  # per parcel: delivered through a pickup point
    return_to_sender: float = 0.01  # per parcel: never collected, returned to the sender

    def __post_init__(self) -> None:
        for name, rate in vars(self).items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"anomaly rate {name} must be between 0 and 1, got {rate}")

    @classmethod
    def none(cls) -> AnomalyRates:
        """Every rate 0: clean traffic."""
        return cls(**{name: 0.0 for name in cls.__dataclass_fields__})


def _default_lane_mix() -> dict[str, float]:
    return {"air": 0.6, "rail": 0.25, "sea": 0.15}


@dataclass(frozen=True)
class SimulationConfig:
    seed: int = 1
    parcels: int = 200
    start_ms: int | None = None
    """Simulated time of the first order (UTC epoch ms); None: the wall clock now (set it for
    reproducible output)."""
    order_window_ms: int = HOUR
    """Orders are spread over this much simulated time after ``start_ms``."""
    lane_mix: dict[str, float] = field(default_factory=_default_lane_mix)
    """Relative weights of the import lanes (air, rail, sea)."""
    export_share: float = 0.1
    """Share of parcels on the export flow (Belgian SME → China)."""
    anomalies: AnomalyRates = field(default_factory=AnomalyRates)
    parcels_per_bag: int = 25
    bags_per_uld: int = 6
    bags_per_container: int = 40
    units_per_departure: int = 4
    """ULDs per flight, containers per train or vessel."""
    batch: int = 0
    """Batch number in continuous generation: keeps tracking numbers and unit ids unique across
    batches of one seed."""

    def __post_init__(self) -> None:
        if not 0 <= self.parcels <= MAX_PARCELS:
            raise ValueError(f"parcels must be between 0 and {MAX_PARCELS}, got {self.parcels}")
        if not 0.0 <= self.export_share <= 1.0:
            raise ValueError(f"export_share must be between 0 and 1, got {self.export_share}")
        unknown = set(self.lane_mix) - set(IMPORT_LANES)
        if unknown or any(weight < 0 for weight in self.lane_mix.values()):
            raise ValueError(f"lane_mix takes non-negative weights for {', '.join(IMPORT_LANES)}, got {self.lane_mix}")
        if self.export_share < 1.0 and self.parcels and sum(self.lane_mix.values()) <= 0:
            raise ValueError("lane_mix needs a positive weight for at least one import lane")
        for name in ("parcels_per_bag", "bags_per_uld", "bags_per_container", "units_per_departure"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.batch < 1000:
            raise ValueError(f"batch must be between 0 and 999, got {self.batch}")
        if self.order_window_ms < 0:
            raise ValueError(f"order_window_ms must not be negative, got {self.order_window_ms}")


@dataclass(frozen=True)
class TimedRecord:
    """One record as the carrier's system sends it: at ``publish_at_ms`` of simulated time."""

    publish_at_ms: int
    kind: RecordKind
    value: dict[str, Any]  # a ScanEvent or Manifest dict, valid against schemas/avro
    hostile: str | None = None
    """The hostile kind (producers/simulator/hostile.py) of a record mixed in by ``--hostile``."""


@dataclass(frozen=True)
class ParcelTruth:
    """What really happened to one parcel, for comparison with the pipeline's results."""

    tracking_number: str
    lane: str
    flow: str
    service_level: str
    ordered_ms: int
    final_code: str
    """Code of the latest event in event time that reaches the parcel (own or unit scans)."""
    final_event_time_ms: int
    lost: bool
    event_ids: tuple[str, ...]
    """Distinct ids of the scans that reach the parcel, in event-time order."""
    bag: str | None
    unit: str | None
    """ULD or container the parcel's bag travelled in."""
    last_mile_carrier: str | None


@dataclass
class Simulation:
    config: SimulationConfig
    start_ms: int
    records: list[TimedRecord]
    truth: dict[str, ParcelTruth]
    anomalies: Counter[str]
    """How many times each anomaly was applied (keys: AnomalyRates field names)."""

    def count_by_source(self) -> Counter[str]:
        """Records per scan source; manifests count under "manifest"."""
        return Counter(r.value["source"] if r.kind == "scan" else "manifest" for r in self.records)


# --- places -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    code: str
    kind: str  # LocationKind symbol
    country: str
    name: str
    zone: str

    def location(self) -> dict[str, Any]:
        return {"code": self.code, "kind": self.kind, "country": self.country, "name": self.name}

    def offset_minutes(self, at_ms: int) -> int:
        offset = datetime.fromtimestamp(at_ms / 1000, ZoneInfo(self.zone)).utcoffset()
        return int(offset.total_seconds() // 60) if offset else 0


CHINA: Final = "Asia/Shanghai"
BELGIUM: Final = "Europe/Brussels"

HGH_WAREHOUSE: Final = Place("CN-HGH-WH1", "facility", "CN", "Cainiao Hangzhou export warehouse", CHINA)
CKG_WAREHOUSE: Final = Place("CN-CKG-WH1", "facility", "CN", "Cainiao Chongqing rail warehouse", CHINA)
XIAN_WAREHOUSE: Final = Place("CN-XIY-WH1", "facility", "CN", "Cainiao Xi'an rail warehouse", CHINA)
NGB_WAREHOUSE: Final = Place("CN-NGB-WH1", "facility", "CN", "Cainiao Ningbo sea warehouse", CHINA)
HGH_AIRPORT: Final = Place("HGH", "airport", "CN", "Hangzhou Xiaoshan International Airport", CHINA)
CHONGQING_RAIL: Final = Place("CNCKG", "locode", "CN", "Chongqing Tuanjiecun rail terminal", CHINA)
XIAN_RAIL: Final = Place("CN-XIY-ITP", "facility", "CN", "Xi'an International Trade & Logistics Park", CHINA)
MALASZEWICZE: Final = Place("PL-MWZ-RAIL", "facility", "PL", "Małaszewicze gauge-change terminal", "Europe/Warsaw")
NINGBO_PORT: Final = Place("CNNGB", "locode", "CN", "Port of Ningbo-Zhoushan", CHINA)
ANTWERP_PORT: Final = Place("BEANR", "locode", "BE", "Port of Antwerp-Bruges", BELGIUM)
LIEGE_RAIL: Final = Place("BELGG", "locode", "BE", "Liège rail terminal", BELGIUM)
LGG_AIRPORT: Final = Place("LGG", "airport", "BE", "Liège Airport", BELGIUM)
LGG_CUSTOMS: Final = Place("LGG-CUSTOMS", "facility", "BE", "Belgian customs, Liège Airport", BELGIUM)
LGG_HUB: Final = Place("LGG-HUB-1", "facility", "BE", "Cainiao eWTP hub, Liège Airport", BELGIUM)
HGH_POSTAL: Final = Place("CN-HGH-IOE", "facility", "CN", "China Post Hangzhou office of exchange", CHINA)

#: Destination countries of imports → postcode maker, last-mile carriers serving it.
DESTINATIONS: Final[dict[str, tuple[str, ...]]] = {
    "BE": ("BPOST", "DPD", "GLS"),
    "NL": ("POSTNL", "DHL"),
    "DE": ("DHL", "DPD", "GLS"),
    "FR": ("DPD", "GLS"),
}
DESTINATION_WEIGHTS: Final = (0.35, 0.2, 0.3, 0.15)
DESTINATION_ZONES: Final = {"BE": BELGIUM, "NL": "Europe/Amsterdam", "DE": "Europe/Berlin", "FR": "Europe/Paris"}
LAST_MILE_CARRIERS: Final = ("BPOST", "POSTNL", "DHL", "DPD", "GLS")
CHINA_CITIES: Final = (("310000", "Hangzhou"), ("200000", "Shanghai"), ("100000", "Beijing"), ("518000", "Shenzhen"))
IMPORT_MERCHANTS: Final = (
    "Shenzhen Bright Gadgets Co.",
    "Yiwu Home Goods Ltd",
    "Hangzhou Silk Studio",
    "Guangzhou Sports Outlet",
    "Dongguan Toy Works",
)
EXPORT_MERCHANTS: Final = (
    "Chocolaterie de Liège",
    "Brasserie des Ardennes",
    "Gaufres & Co",
    "Herstal Cycling Parts",
    "Spa Natural Cosmetics",
)
#: Airline code → (AWB prefix, flight numbers).
AIRLINES: Final = {"CK": ("112", ("CK261", "CK263")), "CA": ("999", ("CA1047", "CA1049"))}
RAIL_OWNERS: Final = ("TGH", "CIC", "TCN")
SEA_LINES: Final = {"COSCO": "CSN", "MSC": "MSC", "CMA CGM": "CMA"}

CUSTOMS_HOLD_REASONS: Final = (
    "Commercial invoice requested",
    "IOSS number missing or invalid",
    "Physical inspection",
    "Declared value under review",
)
FAILED_ATTEMPT_REASONS: Final = {
    "NOT_HOME": "Recipient not at home; notice left",
    "ADDRESS_PROBLEM": "Address incomplete; recipient could not be found",
}


def _postcode(rng: random.Random, country: str) -> str:
    if country == "BE":
        return str(rng.randint(1000, 9992))
    if country == "NL":
        return f"{rng.randint(1011, 9999)} {rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}"
    return f"{rng.randint(1000, 99999):05d}"


# --- journeys -----------------------------------------------------------------------------------


@dataclass
class _Parcel:
    tracking_number: str
    lane: str
    flow: str
    service_level: str
    ordered_ms: int
    shipment: dict[str, Any]
    warehouse: Place
    ready_ms: int = 0  # when its bag may close
    bag: str | None = None
    unit: str | None = None
    lost: bool = False
    last_mile_carrier: str | None = None


@dataclass
class _Bag:
    bag_id: str
    lane: str
    parcels: list[_Parcel]
    closed_ms: int = 0  # manifest time
    ready_ms: int = 0  # export customs cleared for every parcel inside
    lost: bool = False


@dataclass
class _Unit:
    unit_id: str
    unit_type: Literal["uld", "container"]
    lane: str
    bags: list[_Bag]
    references: dict[str, Any]
    carrier: str
    ready_ms: int = 0


class _Builder:
    """Accumulates a simulation's events and manifests, then times and orders them."""

    def __init__(self, config: SimulationConfig, start_ms: int) -> None:
        self.config = config
        self.rates = config.anomalies
        self.start_ms = start_ms
        self.rng = random.Random(f"parcelstream-simulator:{config.seed}:{config.batch}")
        self.serial_base = self.rng.randrange(10**7)
        self.serials: Counter[str] = Counter()
        self.scans: list[dict[str, Any]] = []
        self.manifests: list[tuple[dict[str, Any], bool]] = []  # (manifest, published after the unit's arrival)
        self.parcels: list[_Parcel] = []
        self.anomalies: Counter[str] = Counter()

    # identifiers ---------------------------------------------------------------------------------

    def serial(self, kind: str, modulus: int) -> int:
        """A serial unique per kind within one seed: batch and sequence number spread from a seeded base."""
        self.serials[kind] += 1
        return (self.serial_base + self.config.batch * 100_000 + self.serials[kind]) % modulus

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def chance(self, rate: float, anomaly: str | None = None) -> bool:
        hit = self.rng.random() < rate
        if hit and anomaly:
            self.anomalies[anomaly] += 1
        return hit

    def between(self, low_ms: int, high_ms: int) -> int:
        return self.rng.randint(low_ms, high_ms)

    # records -------------------------------------------------------------------------------------

    def scan(
        self,
        *,
        at_ms: int,
        place: Place,
        source: str,
        carrier: str,
        raw_format: str,
        raw_code: str,
        tracking_number: str | None = None,
        handling_unit: str | None = None,
        references: dict[str, Any] | None = None,
        reason: str | None = None,
        shipment: dict[str, Any] | None = None,
    ) -> int:
        code = normalise(raw_format, raw_code)
        if code is None:  # a programming error: every code the simulator sends is in code_maps
            raise ValueError(f"{raw_format} code {raw_code!r} is not in producers/formats/code_maps.py")
        self.scans.append(
            {
                "event_id": self.event_id(),
                "tracking_number": tracking_number,
                "handling_unit": handling_unit,
                "source": source,
                "code": code,
                "raw_code": raw_code,
                "raw_format": raw_format,
                "carrier": carrier,
                "event_time_ms": at_ms,
                "utc_offset_minutes": place.offset_minutes(at_ms),
                "recorded_time_ms": at_ms,  # replaced by the publish time in _timed_records
                "location": place.location(),
                "references": _references(references),
                "reason": reason,
                "shipment": shipment,
            }
        )
        return at_ms

    def manifest(
        self,
        *,
        at_ms: int,
        unit: str,
        unit_type: str,
        members: list[str],
        member_type: str,
        carrier: str,
        source: str,
        references: dict[str, Any] | None = None,
        after_arrival: bool = False,
    ) -> None:
        self.manifests.append(
            (
                {
                    "manifest_id": self.event_id(),
                    "handling_unit": unit,
                    "unit_type": unit_type,
                    "action": "add",
                    "members": members,
                    "member_type": member_type,
                    "carrier": carrier,
                    "source": source,
                    "event_time_ms": at_ms,
                    "recorded_time_ms": at_ms,
                    "references": _references(references),
                },
                after_arrival,
            )
        )

    # parcels -------------------------------------------------------------------------------------

    def new_parcel(self, lane: str) -> _Parcel:
        rng = self.rng
        ordered_ms = self.start_ms + (rng.randrange(self.config.order_window_ms) if self.config.order_window_ms else 0)
        if lane == "export":
            postcode, _city = rng.choice(CHINA_CITIES)
            service_level = rng.choices(("express", "standard"), (0.4, 0.6))[0]
            tracking_number = make_tracking_number("CE", self.serial("parcel", 10**8), "BE")
            origin, destination, merchant = "BE", "CN", rng.choice(EXPORT_MERCHANTS)
        else:
            destination = rng.choices(tuple(DESTINATIONS), DESTINATION_WEIGHTS)[0]
            postcode = _postcode(rng, destination)
            service_level = {
                "air": rng.choices(("express", "standard"), (0.4, 0.6))[0],
                "rail": rng.choices(("standard", "economy"), (0.3, 0.7))[0],
                "sea": "economy",
            }[lane]
            tracking_number = make_tracking_number("LX", self.serial("parcel", 10**8), "CN")
            origin, merchant = "CN", rng.choice(IMPORT_MERCHANTS)
        shipment = {
            "service_level": service_level,
            "flow": "export" if lane == "export" else "import",
            "origin_country": origin,
            "destination_country": destination,
            "destination_postcode": postcode,
            "merchant": merchant,
            "ordered_time_ms": ordered_ms,
        }
        if lane == "export":
            warehouse = LGG_HUB
        else:
            warehouse = {"air": HGH_WAREHOUSE, "sea": NGB_WAREHOUSE}.get(lane) or rng.choice(
                (CKG_WAREHOUSE, XIAN_WAREHOUSE)
            )
        return _Parcel(tracking_number, lane, shipment["flow"], service_level, ordered_ms, shipment, warehouse)

    def origin(self, parcel: _Parcel) -> None:
        """Order, origin warehouse scans and packing (the bag closes later)."""
        tn = parcel.tracking_number
        warehouse = parcel.warehouse
        carrier = "CAINIAO-LGG" if parcel.lane == "export" else "CAINIAO"
        t = self.scan(
            at_ms=parcel.ordered_ms,
            place=warehouse,
            source="warehouse",
            carrier=carrier,
            raw_format="gs1-epcis",
            raw_code="commissioning",
            tracking_number=tn,
            shipment=parcel.shipment,
        )
        if parcel.lane == "export":
            # The SME's parcel is dropped at the hub, which is the origin warehouse of this flow.
            t = self.scan(
                at_ms=t + self.between(4 * HOUR, 30 * HOUR),
                place=warehouse,
                source="warehouse",
                carrier=carrier,
                raw_format="gs1-epcis",
                raw_code="receiving",
                tracking_number=tn,
            )
        else:
            t = self.scan(
                at_ms=t + self.between(2 * HOUR, 24 * HOUR),
                place=warehouse,
                source="warehouse",
                carrier=carrier,
                raw_format="upu-emsevt",
                raw_code="EMA",
                tracking_number=tn,
            )
        parcel.ready_ms = self.scan(
            at_ms=t + self.between(HOUR, 4 * HOUR),
            place=warehouse,
            source="warehouse",
            carrier=carrier,
            raw_format="gs1-epcis",
            raw_code="packing",
            tracking_number=tn,
        )

    def close_bag(self, bag: _Bag) -> None:
        """Bag manifest, then export customs per parcel."""
        export = bag.lane == "export"
        bag.closed_ms = max(p.ready_ms for p in bag.parcels) + self.between(10 * MINUTE, 40 * MINUTE)
        self.manifest(
            at_ms=bag.closed_ms,
            unit=bag.bag_id,
            unit_type="bag",
            members=[p.tracking_number for p in bag.parcels],
            member_type="parcel",
            carrier="CAINIAO-LGG" if export else "CAINIAO",
            source="warehouse",
            references={"bag": bag.bag_id},
        )
        customs_place = LGG_CUSTOMS if export else bag.parcels[0].warehouse
        cleared = []
        for parcel in bag.parcels:
            parcel.bag = bag.bag_id
            if export:
                t = self.scan(
                    at_ms=bag.closed_ms + self.between(30 * MINUTE, 3 * HOUR),
                    place=customs_place,
                    source="customs",
                    carrier="BE-CUSTOMS",
                    raw_format="customs",
                    raw_code="EXPORT_RELEASED",
                    tracking_number=parcel.tracking_number,
                    references={"bag": bag.bag_id},
                )
            else:
                t = self.scan(
                    at_ms=bag.closed_ms + self.between(30 * MINUTE, 90 * MINUTE),
                    place=customs_place,
                    source="customs",
                    carrier="CN-CUSTOMS",
                    raw_format="upu-emsevt",
                    raw_code="EXA",
                    tracking_number=parcel.tracking_number,
                    references={"bag": bag.bag_id},
                )
                t = self.scan(
                    at_ms=t + self.between(HOUR, 3 * HOUR),
                    place=customs_place,
                    source="customs",
                    carrier="CN-CUSTOMS",
                    raw_format="upu-emsevt",
                    raw_code="EXC",
                    tracking_number=parcel.tracking_number,
                    references={"bag": bag.bag_id},
                )
            cleared.append(t)
        bag.ready_ms = max(cleared)

    # linehaul ------------------------------------------------------------------------------------

    def linehaul(self, lane: str, bags: list[_Bag]) -> None:
        """Consolidate bags into units, units into departures, and move them to LGG (or HGH)."""
        air = lane in ("air", "export")
        per_unit = self.config.bags_per_uld if air else self.config.bags_per_container
        per_departure = per_unit * self.config.units_per_departure
        for i in range(0, len(bags), per_departure):
            on_departure = bags[i : i + per_departure]
            carrier = self.rng.choice(
                tuple(AIRLINES) if air else ("CR-EXPRESS",) if lane == "rail" else tuple(SEA_LINES)
            )
            units = [
                self.new_unit(lane, carrier, on_departure[j : j + per_unit])
                for j in range(0, len(on_departure), per_unit)
            ]
            if air:
                self.flight(lane, units)
            elif lane == "rail":
                self.train(units)
            else:
                self.vessel(units)

    def new_unit(self, lane: str, carrier: str, bags: list[_Bag]) -> _Unit:
        ready_ms = max(b.ready_ms for b in bags) + self.between(HOUR, 3 * HOUR)
        if lane in ("air", "export"):
            uld_type = self.rng.choice(("AKE", "PMC", "PAG"))
            unit_id = f"{uld_type}{self.serial('uld', 10**5):05d}{carrier}"
            unit = _Unit(unit_id, "uld", lane, bags, {"uld": unit_id}, carrier, ready_ms)
        else:
            owner = self.rng.choice(RAIL_OWNERS) if lane == "rail" else SEA_LINES[carrier]
            unit_id = make_container_number(owner, self.serial("container", 10**6))
            unit = _Unit(unit_id, "container", lane, bags, {"container": unit_id}, carrier, ready_ms)
        for bag in bags:
            for parcel in bag.parcels:
                parcel.unit = unit_id
        return unit

    def unit_manifest(self, unit: _Unit, source: str) -> None:
        late = self.chance(self.rates.container_scan_before_manifest, "container_scan_before_manifest")
        self.manifest(
            at_ms=unit.ready_ms - self.between(20 * MINUTE, 40 * MINUTE),  # built up, then handed over
            unit=unit.unit_id,
            unit_type=unit.unit_type,
            members=[b.bag_id for b in unit.bags],
            member_type="bag",
            carrier=unit.carrier,
            source=source,
            references=unit.references,
            after_arrival=late,
        )

    def departure_delay(self, low_ms: int, high_ms: int) -> int:
        return self.between(low_ms, high_ms) if self.chance(self.rates.delayed_flight, "delayed_flight") else 0

    def unit_scan(
        self, unit: _Unit, at_ms: int, place: Place, source: str, raw_format: str, raw_code: str, **extra: Any
    ) -> int:
        return self.scan(
            at_ms=at_ms,
            place=place,
            source=source,
            carrier=unit.carrier,
            raw_format=raw_format,
            raw_code=raw_code,
            handling_unit=unit.unit_id,
            references=unit.references | extra.pop("references", {}),
            **extra,
        )

    def flight(self, lane: str, units: list[_Unit]) -> None:
        export = lane == "export"
        origin, destination = (LGG_AIRPORT, HGH_AIRPORT) if export else (HGH_AIRPORT, LGG_AIRPORT)
        prefix, numbers = AIRLINES[units[0].carrier]
        awb = make_awb(prefix, self.serial("awb", 10**7))
        flight_number = self.rng.choice(numbers)
        for unit in units:  # one consignment (AWB) on one flight
            unit.references |= {"awb": awb, "flight_number": flight_number}
        manifested = []
        for unit in units:
            self.unit_manifest(unit, "flight")
            t = self.unit_scan(unit, unit.ready_ms, origin, "flight", "iata-fsu", "RCS")
            manifested.append(
                self.unit_scan(unit, t + self.between(HOUR, 2 * HOUR), origin, "flight", "iata-fsu", "MAN")
            )
        departed = max(manifested) + self.between(2 * HOUR, 4 * HOUR) + self.departure_delay(6 * HOUR, 30 * HOUR)
        arrived = departed + self.between(11 * HOUR, 13 * HOUR)
        for unit in units:
            self.unit_scan(unit, departed, origin, "flight", "iata-fsu", "DEP")
            self.unit_scan(unit, arrived, destination, "flight", "iata-fsu", "ARR")
            unloaded = self.unit_scan(
                unit, arrived + self.between(HOUR, 2 * HOUR), destination, "flight", "iata-fsu", "RCF"
            )
            self.after_linehaul(unit, unloaded, destination, "flight", "iata-fsu")

    def train(self, units: list[_Unit]) -> None:
        origin = self.rng.choice((CHONGQING_RAIL, XIAN_RAIL))
        train_id = f"X{self.rng.randint(8000, 8099)}-{self.config.seed % 1000:03d}{self.serial('train', 1000):03d}"
        for unit in units:
            unit.references |= {"train_id": train_id}
            self.unit_manifest(unit, "rail")
        departed = max(u.ready_ms for u in units) + self.between(6 * HOUR, 24 * HOUR)
        departed += self.departure_delay(DAY, 3 * DAY)
        border_in = departed + self.between(10 * DAY, 12 * DAY)
        border_out = border_in + self.between(DAY, 2 * DAY)
        arrived = border_out + self.between(3 * DAY, 5 * DAY)
        for unit in units:
            self.unit_scan(unit, departed, origin, "rail", "upu-emsevt", "EMC")
            self.unit_scan(unit, border_in, MALASZEWICZE, "rail", "upu-emsevt", "EMJ")
            self.unit_scan(unit, border_out, MALASZEWICZE, "rail", "upu-emsevt", "EMK")
            self.unit_scan(unit, arrived, LIEGE_RAIL, "rail", "upu-emsevt", "EMD")
            unloaded = self.unit_scan(
                unit, arrived + self.between(2 * HOUR, 6 * HOUR), LIEGE_RAIL, "rail", "gs1-epcis", "unloading"
            )
            self.after_linehaul(unit, unloaded, LIEGE_RAIL, "rail", "gs1-epcis")

    def vessel(self, units: list[_Unit]) -> None:
        for unit in units:
            self.unit_manifest(unit, "sea")
        departed = max(u.ready_ms for u in units) + self.between(DAY, 3 * DAY) + self.departure_delay(3 * DAY, 6 * DAY)
        at_antwerp = departed + self.between(28 * DAY, 31 * DAY)
        for unit in units:
            self.unit_scan(unit, departed, NINGBO_PORT, "sea", "upu-emsevt", "EMC")
            self.unit_scan(unit, at_antwerp, ANTWERP_PORT, "sea", "upu-emsevt", "EMJ")
            # Each container then leaves the port by truck on its own.
            trucked = self.unit_scan(
                unit, at_antwerp + self.between(DAY, 3 * DAY), ANTWERP_PORT, "sea", "upu-emsevt", "EMK"
            )
            arrived = self.unit_scan(
                unit, trucked + self.between(3 * HOUR, 5 * HOUR), LGG_AIRPORT, "sea", "upu-emsevt", "EMD"
            )
            unloaded = self.unit_scan(
                unit, arrived + self.between(HOUR, 3 * HOUR), LGG_HUB, "sea", "gs1-epcis", "unloading"
            )
            self.after_linehaul(unit, unloaded, LGG_HUB, "sea", "gs1-epcis")

    def after_linehaul(self, unit: _Unit, unloaded_ms: int, place: Place, source: str, raw_format: str) -> None:
        """Lost bags (reported as a discrepancy on air units), then each parcel's destination journey."""
        lost = [bag for bag in unit.bags if self.chance(self.rates.lost_bag, "lost_bag")]
        if lost and raw_format == "iata-fsu":
            self.unit_scan(
                unit,
                unloaded_ms + self.between(20 * MINUTE, 60 * MINUTE),
                place,
                source,
                raw_format,
                "DIS",
                reason=f"{len(lost)} of {len(unit.bags)} bags missing at breakdown",
            )
        for bag in unit.bags:
            bag.lost = bag in lost
            for parcel in bag.parcels:
                parcel.lost = bag.lost
                if parcel.lost:
                    continue
                if unit.lane == "export":
                    self.china_last_mile(parcel, unloaded_ms)
                else:
                    self.import_destination(parcel, unloaded_ms)

    # destination ---------------------------------------------------------------------------------

    def import_destination(self, parcel: _Parcel, unloaded_ms: int) -> None:
        tn = parcel.tracking_number
        refs = {"bag": parcel.bag}
        t = self.scan(
            at_ms=unloaded_ms + self.between(30 * MINUTE, 2 * HOUR),
            place=LGG_CUSTOMS,
            source="customs",
            carrier="BE-CUSTOMS",
            raw_format="customs",
            raw_code="PRESENTED",
            tracking_number=tn,
            references=refs,
        )
        if self.chance(self.rates.customs_hold, "customs_hold"):
            t = self.scan(
                at_ms=t + self.between(HOUR, 3 * HOUR),
                place=LGG_CUSTOMS,
                source="customs",
                carrier="BE-CUSTOMS",
                raw_format="customs",
                raw_code="HELD",
                tracking_number=tn,
                references=refs,
                reason=self.rng.choice(CUSTOMS_HOLD_REASONS),
            )
            t += self.between(24 * HOUR, 72 * HOUR)
        else:
            t += self.between(HOUR, 6 * HOUR)
        t = self.scan(
            at_ms=t,
            place=LGG_CUSTOMS,
            source="customs",
            carrier="BE-CUSTOMS",
            raw_format="customs",
            raw_code="RELEASED",
            tracking_number=tn,
            references=refs,
        )
        hub = {"place": LGG_HUB, "source": "warehouse", "carrier": "CAINIAO-LGG", "raw_format": "gs1-epcis"}
        t = self.scan(at_ms=t + self.between(30 * MINUTE, 2 * HOUR), raw_code="receiving", tracking_number=tn, **hub)
        t = self.scan(at_ms=t + self.between(30 * MINUTE, 2 * HOUR), raw_code="sorting", tracking_number=tn, **hub)
        country = parcel.shipment["destination_country"]
        carrier = self.rng.choice(DESTINATIONS[country])
        parcel.last_mile_carrier = carrier
        if self.chance(self.rates.missort, "missort"):
            wrong = self.rng.choice([c for c in LAST_MILE_CARRIERS if c != carrier])
            # The wrong carrier's driver refuses the parcel at the dock; the hub sorts it again.
            t = self.scan(
                at_ms=t + self.between(HOUR, 3 * HOUR),
                place=LGG_HUB,
                source="lastmile",
                carrier=wrong,
                raw_format="carrier-csv",
                raw_code="MISSORTED",
                tracking_number=tn,
                reason=f"Not for {wrong}: sorted to the wrong outbound lane",
            )
            t = self.scan(at_ms=t + self.between(HOUR, 2 * HOUR), raw_code="sorting", tracking_number=tn, **hub)
        t = self.scan(at_ms=t + self.between(HOUR, 4 * HOUR), raw_code="shipping", tracking_number=tn, **hub)
        zone = DESTINATION_ZONES[country]
        depot = Place(f"{carrier}-{country}-DEPOT", "facility", country, f"{carrier} delivery depot", zone)
        round_number = self.rng.randint(1, 40)
        area = Place(f"{carrier}-{country}-R{round_number:02d}", "address_area", country, "Delivery round", zone)
        self.last_mile(parcel, carrier, depot, area, t)

    def last_mile(self, parcel: _Parcel, carrier: str, depot: Place, area: Place, handover_ms: int) -> None:
        tn = parcel.tracking_number
        csv = {"source": "lastmile", "carrier": carrier, "raw_format": "carrier-csv", "tracking_number": tn}
        t = self.scan(at_ms=handover_ms + self.between(4 * HOUR, 10 * HOUR), place=depot, raw_code="AT_DEPOT", **csv)
        pickup = self.chance(self.rates.pickup_point, "pickup_point")
        failed = self.chance(self.rates.failed_attempt, "failed_attempt")
        returned = self.chance(self.rates.return_to_sender, "return_to_sender")
        if not pickup or failed or returned:
            t = self.scan(at_ms=_next_morning(t, depot, self.rng), place=depot, raw_code="OUT_FOR_DELIVERY", **csv)
        if failed or returned:
            status = self.rng.choice(tuple(FAILED_ATTEMPT_REASONS))
            t = self.scan(
                at_ms=t + self.between(2 * HOUR, 8 * HOUR),
                place=area,
                raw_code=status,
                reason=FAILED_ATTEMPT_REASONS[status],
                **csv,
            )
        if returned:
            t = self.scan(at_ms=t + self.between(DAY, 2 * DAY), place=depot, raw_code="RETURN_TO_SENDER", **csv)
            self.scan(at_ms=t + self.between(3 * DAY, 5 * DAY), place=LGG_HUB, raw_code="RETURNED", **csv)
            return
        if pickup:
            point = Place(f"{area.code}-PUDO", "facility", area.country, f"{carrier} pickup point", area.zone)
            t = self.scan(at_ms=t + self.between(2 * HOUR, 6 * HOUR), place=point, raw_code="AT_PICKUP_POINT", **csv)
            self.scan(at_ms=t + self.between(6 * HOUR, 4 * DAY), place=point, raw_code="PICKED_UP", **csv)
            return
        if failed:
            t = self.scan(at_ms=_next_morning(t, depot, self.rng), place=depot, raw_code="OUT_FOR_DELIVERY", **csv)
        self.scan(at_ms=t + self.between(HOUR, 9 * HOUR), place=area, raw_code="DELIVERED", **csv)

    def china_last_mile(self, parcel: _Parcel, unloaded_ms: int) -> None:
        """China Post reports the export parcel's destination steps in UPU EMSEVT codes."""
        tn = parcel.tracking_number
        post = {"place": HGH_POSTAL, "carrier": "CNPOST", "raw_format": "upu-emsevt", "tracking_number": tn}
        parcel.last_mile_carrier = "CNPOST"
        t = self.scan(at_ms=unloaded_ms + self.between(HOUR, 4 * HOUR), source="customs", raw_code="EDB", **post)
        if self.chance(self.rates.customs_hold, "customs_hold"):
            reason = self.rng.choice(CUSTOMS_HOLD_REASONS)
            t = self.scan(
                at_ms=t + self.between(HOUR, 3 * HOUR), source="customs", raw_code="EME", reason=reason, **post
            )
            t += self.between(24 * HOUR, 72 * HOUR)
        else:
            t += self.between(2 * HOUR, 8 * HOUR)
        t = self.scan(at_ms=t, source="customs", raw_code="EMF", **post)
        t = self.scan(at_ms=t + self.between(HOUR, 3 * HOUR), source="lastmile", raw_code="EDC", **post)
        t = self.scan(at_ms=t + self.between(8 * HOUR, 30 * HOUR), source="lastmile", raw_code="EMG", **post)
        if self.chance(self.rates.failed_attempt, "failed_attempt"):
            t = self.scan(
                at_ms=t + self.between(3 * HOUR, 10 * HOUR),
                source="lastmile",
                raw_code="EMH",
                reason="Addressee absent",
                **post,
            )
        if self.chance(self.rates.pickup_point, "pickup_point"):
            t = self.scan(at_ms=t + self.between(2 * HOUR, 8 * HOUR), source="lastmile", raw_code="EDD", **post)
        self.scan(at_ms=t + self.between(3 * HOUR, 30 * HOUR), source="lastmile", raw_code="EMI", **post)

    # assembly ------------------------------------------------------------------------------------

    def build(self) -> Simulation:
        config = self.config
        weights = [config.lane_mix.get(lane, 0.0) for lane in IMPORT_LANES]
        for _ in range(config.parcels):
            export = self.rng.random() < config.export_share
            lane = "export" if export else self.rng.choices(IMPORT_LANES, weights)[0]
            parcel = self.new_parcel(lane)
            self.parcels.append(parcel)
            self.origin(parcel)
        for lane in LANES:
            on_lane = sorted((p for p in self.parcels if p.lane == lane), key=lambda p: p.ready_ms)
            bags = []
            for i in range(0, len(on_lane), config.parcels_per_bag):
                bag_id = f"BAG{'BE' if lane == 'export' else 'CN'}{self.serial('bag', 10**8):08d}"
                bag = _Bag(bag_id, lane, on_lane[i : i + config.parcels_per_bag])
                self.close_bag(bag)
                bags.append(bag)
            if bags:
                self.linehaul(lane, bags)
        records = self.timed_records()
        return Simulation(config, self.start_ms, records, self.truth(), self.anomalies)

    def timed_records(self) -> list[TimedRecord]:
        """When each carrier's system sends each record, with the publishing anomalies applied."""
        rng, rates = self.rng, self.rates
        by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for scan in self.scans:
            by_key[scan["tracking_number"] or scan["handling_unit"]].append(scan)
        publish_at: dict[str, int] = {}
        for scan in self.scans:
            # Normal upload latency of a scanner or a carrier's batch feed.
            publish_at[scan["event_id"]] = scan["event_time_ms"] + rng.randint(5_000, 3 * MINUTE)
        successor: dict[str, dict[str, Any]] = {}
        for scans in by_key.values():
            scans.sort(key=lambda s: s["event_time_ms"])
            for earlier, later in itertools.pairwise(scans):
                successor[earlier["event_id"]] = later
        for scan in self.scans:
            if scan["code"] == "ORDER_CREATED":
                continue  # the order data always comes first
            event_id = scan["event_id"]
            following = successor.get(event_id)
            if following is not None and self.chance(rates.out_of_order, "out_of_order"):
                publish_at[event_id] = following["event_time_ms"] + rng.randint(5 * MINUTE, HOUR)
            elif self.chance(rates.late_scan, "late_scan"):
                publish_at[event_id] = scan["event_time_ms"] + rng.randint(2 * HOUR, 24 * HOUR)
        unit_arrival: dict[str, int] = {}
        for scan in self.scans:
            if scan["handling_unit"] and scan["code"] == "LINEHAUL_ARRIVED":
                unit_arrival[scan["handling_unit"]] = publish_at[scan["event_id"]]
        records: list[tuple[int, int, RecordKind, dict[str, Any]]] = []
        for scan in self.scans:
            sent = publish_at[scan["event_id"]]
            value = scan | {"recorded_time_ms": sent}
            records.append((sent, len(records), "scan", value))
            if scan["code"] != "ORDER_CREATED" and self.chance(rates.duplicate_scan, "duplicate_scan"):
                records.append((sent + rng.randint(10_000, 2 * HOUR), len(records), "scan", value))
        for manifest, after_arrival in self.manifests:
            if after_arrival:  # uploaded once the unit has landed: its scans come first
                sent = unit_arrival[manifest["handling_unit"]] + rng.randint(10 * MINUTE, 2 * HOUR)
            else:
                sent = manifest["event_time_ms"] + rng.randint(MINUTE, 10 * MINUTE)
            records.append((sent, len(records), "manifest", manifest | {"recorded_time_ms": sent}))
        records.sort()
        return [TimedRecord(sent, kind, value) for sent, _, kind, value in records]

    def truth(self) -> dict[str, ParcelTruth]:
        by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for scan in self.scans:
            by_key[scan["tracking_number"] or scan["handling_unit"]].append(scan)
        truths = {}
        for parcel in self.parcels:
            reaching = [s for key in (parcel.tracking_number, parcel.bag, parcel.unit) if key for s in by_key[key]]
            reaching.sort(key=lambda s: s["event_time_ms"])
            latest = reaching[-1]
            truths[parcel.tracking_number] = ParcelTruth(
                tracking_number=parcel.tracking_number,
                lane=parcel.lane,
                flow=parcel.flow,
                service_level=parcel.service_level,
                ordered_ms=parcel.ordered_ms,
                final_code=latest["code"],
                final_event_time_ms=latest["event_time_ms"],
                lost=parcel.lost,
                event_ids=tuple(dict.fromkeys(s["event_id"] for s in reaching)),
                bag=parcel.bag,
                unit=parcel.unit,
                last_mile_carrier=parcel.last_mile_carrier,
            )
        return truths


def _references(given: dict[str, Any] | None) -> dict[str, Any]:
    references = {"awb": None, "uld": None, "bag": None, "container": None, "flight_number": None, "train_id": None}
    return references | (given or {})


def _next_morning(after_ms: int, place: Place, rng: random.Random) -> int:
    """A delivery round start between 07:00 and 09:00 local time, the day after ``after_ms``."""
    zone = ZoneInfo(place.zone)
    local = datetime.fromtimestamp(after_ms / 1000, zone) + timedelta(days=1)
    start = local.replace(hour=7, minute=0, second=0, microsecond=0)
    return int(start.timestamp() * 1000) + rng.randint(0, 2 * HOUR)


def simulate(config: SimulationConfig) -> Simulation:
    """Generate the records and the ground truth for ``config`` (deterministic for a given start_ms)."""
    start_ms = config.start_ms if config.start_ms is not None else time.time_ns() // 1_000_000
    return _Builder(config, start_ms).build()
