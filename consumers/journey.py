"""What customers are told about a parcel, in en, fr, nl, de and zh: one message per step of its
history, a milestone bar, the delivery line. Pure functions over the public view of the read model
(``consumers.read_model.public_view``); the tracking page and the notifier's e-mails and webhooks
both speak through this module, so a step reads the same everywhere.

- **Steps.** A message per sub-status (``schemas/sub_statuses.py``: each scan code has one), with
  the place, the carrier or the country where known, and the carrier's reason for exceptions. Each
  template lists variants separated by ``|``, most specific first; the first whose placeholders are
  all known is used, so a step without a location still reads as a sentence. Times are the scan's
  local time with its UTC offset (the history keeps the offset, not the zone name).
- **Movement.** The linehaul steps (loaded, departed, transit, arrived, unloaded) name the flight,
  block train or sea container when the view carries the parcel's ``movement`` (the tracking
  service adds it from the movement board, ``consumers/movements.py``): ``MOVEMENT_STEP_MESSAGES``,
  tried before ``STEP_MESSAGES``, which remain the fallback when no movement is known.
- **Milestones.** ordered → left <origin country> → arrived in <destination country> → customs
  cleared → at the hub → out for delivery → delivered (an export reads as the mirror journey: the
  countries come from the scans' locations). The furthest milestone reached is current; an
  exception (customs hold, failed attempt, return, loss) is flagged on it with what the customer
  can do.
- **Delivery line.** Delivered: "Delivered on" the delivery's local time, no estimate. Otherwise the
  estimated window in the local time of the latest scan, or "Running late" with the reasons: the
  SLA rules the parcel has breached (``delay_reasons`` of the public view, names of
  ``schemas/sla.py``), else the promise when the window ends after it (``on_time`` false).
  Under an estimated window, when the read model recorded a move of it (``estimate_moved`` of the
  public view: the start or end shifted by more than the projector's threshold), when and why:
  "Estimated delivery moved from Tue, Dec 8 – Thu, Dec 10 to Fri, Dec 11 – Mon, Dec 14 on Dec 5:
  held by customs in Belgium", the reason being the step message of the scan that moved it. Not
  once delivered, nor when no window is shown.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any, Final

from babel import Locale
from babel.dates import format_interval, format_skeleton, format_time

from schemas.sla import SLA_RULES
from schemas.sub_statuses import SUB_STATUS_OF_CODE

LANGUAGES: Final[tuple[str, ...]] = ("en", "fr", "nl", "de", "zh")
DEFAULT_LANGUAGE: Final = "en"

STATUS_NAMES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "InfoReceived": "Info received",
        "InTransit": "In transit",
        "CustomsHold": "Held at customs",
        "OutForDelivery": "Out for delivery",
        "AttemptFail": "Delivery attempt failed",
        "AvailableForPickup": "Ready for pickup",
        "Delivered": "Delivered",
        "Exception": "Exception",
        "Expired": "Expired",
    },
    "fr": {
        "InfoReceived": "Informations reçues",
        "InTransit": "En transit",
        "CustomsHold": "Retenu en douane",
        "OutForDelivery": "En cours de livraison",
        "AttemptFail": "Échec de la livraison",
        "AvailableForPickup": "Disponible au point de retrait",
        "Delivered": "Livré",
        "Exception": "Incident",
        "Expired": "Expiré",
    },
    "nl": {
        "InfoReceived": "Informatie ontvangen",
        "InTransit": "Onderweg",
        "CustomsHold": "Tegengehouden door de douane",
        "OutForDelivery": "Wordt bezorgd",
        "AttemptFail": "Bezorgpoging mislukt",
        "AvailableForPickup": "Klaar om op te halen",
        "Delivered": "Bezorgd",
        "Exception": "Probleem",
        "Expired": "Verlopen",
    },
    "de": {
        "InfoReceived": "Daten übermittelt",
        "InTransit": "Unterwegs",
        "CustomsHold": "Beim Zoll angehalten",
        "OutForDelivery": "In Zustellung",
        "AttemptFail": "Zustellversuch gescheitert",
        "AvailableForPickup": "Abholbereit",
        "Delivered": "Zugestellt",
        "Exception": "Problem",
        "Expired": "Abgelaufen",
    },
    "zh": {
        "InfoReceived": "已收到信息",
        "InTransit": "运输途中",
        "CustomsHold": "海关扣留",
        "OutForDelivery": "派送中",
        "AttemptFail": "投递失败",
        "AvailableForPickup": "待取件",
        "Delivered": "已签收",
        "Exception": "异常",
        "Expired": "已过期",
    },
}

#: Per language, per sub-status: variants separated by "|", most specific first (see the module doc).
STEP_MESSAGES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "order_created": "Order placed: the seller has announced the parcel",
        "received_at_origin": "Received at {place}|Received at the sender's warehouse",
        "sorted_at_origin": "Sorted and packed at {place}|Sorted and packed for shipping",
        "export_customs_presented": "Presented to export customs in {country}|Presented to export customs",
        "export_customs_cleared": "Released by export customs in {country}|Released by export customs",
        "held_export": "Held by export customs in {country}|Held by export customs",
        "export_cancelled": "Export cancelled",
        "linehaul_booked": "Booked on a flight, train or ship from {place}|Booked on a flight, train or ship",
        "received_by_linehaul": "Handed to the airline or transport company at {place}"
        "|Handed to the airline or transport company",
        "linehaul_manifested": "Loaded for departure at {place}|Loaded for departure",
        "departed_origin": "Departed {place}|Departed",
        "arrived_at_transit": "Arrived at {place} in transit|Arrived at a transit point",
        "departed_transit": "Left {place} in transit|Left a transit point",
        "arrived_at_destination": "Arrived at {place}|Arrived in the destination country",
        "unloaded_at_destination": "Unloaded at {place}|Unloaded at the destination",
        "linehaul_discrepancy": "Not all pieces arrived at {place}: being checked"
        "|Not all pieces arrived: being checked",
        "import_customs_presented": "Presented to customs in {country}|Presented to customs",
        "held_import": "Held by customs in {country}|Held by customs",
        "import_customs_cleared": "Released by customs in {country}|Released by customs",
        "received_at_hub": "Received at {place}|Received at the sorting hub",
        "sorted_at_hub": "Sorted at {place}|Sorted at the hub",
        "missorted_at_hub": "Sorted to the wrong lane at {place}: sorted again|Sorted to the wrong lane: sorted again",
        "departed_hub": "Left {place}|Left the hub",
        "handed_to_last_mile": "Handed to {carrier}|Handed to the delivery company",
        "at_delivery_office": "Arrived at {place}|Arrived at the local delivery office",
        "out_for_delivery": "Out for delivery with {carrier}|Out for delivery",
        "attempt_failed": "Delivery attempt failed",
        "at_pickup_point": "Ready for pickup at {place}|Ready for pickup",
        "delivered": "Delivered",
        "returning_to_sender": "On its way back to the sender",
        "returned_to_sender": "Returned to the sender",
        "lost": "Reported lost",
        "damaged": "Reported damaged",
        "carrier_information": "Update from the transport company at {place}|Update from the transport company",
    },
    "fr": {
        "order_created": "Commande passée : le vendeur a annoncé le colis",
        "received_at_origin": "Reçu à {place}|Reçu à l'entrepôt de l'expéditeur",
        "sorted_at_origin": "Trié et emballé à {place}|Trié et emballé pour l'expédition",
        "export_customs_presented": "Présenté à la douane d'exportation ({country})|Présenté à la douane d'exportation",
        "export_customs_cleared": "Dédouané à l'exportation ({country})|Dédouané à l'exportation",
        "held_export": "Retenu par la douane d'exportation ({country})|Retenu par la douane d'exportation",
        "export_cancelled": "Exportation annulée",
        "linehaul_booked": "Réservé sur un vol, un train ou un navire au départ de {place}"
        "|Réservé sur un vol, un train ou un navire",
        "received_by_linehaul": "Remis à la compagnie de transport à {place}|Remis à la compagnie de transport",
        "linehaul_manifested": "Chargé pour le départ à {place}|Chargé pour le départ",
        "departed_origin": "Parti de {place}|Parti",
        "arrived_at_transit": "Arrivé en transit à {place}|Arrivé à un point de transit",
        "departed_transit": "Reparti de {place} (transit)|Reparti d'un point de transit",
        "arrived_at_destination": "Arrivé à {place}|Arrivé dans le pays de destination",
        "unloaded_at_destination": "Déchargé à {place}|Déchargé à destination",
        "linehaul_discrepancy": "Colis incomplet à l'arrivée à {place} : vérification en cours"
        "|Colis incomplet à l'arrivée : vérification en cours",
        "import_customs_presented": "Présenté à la douane ({country})|Présenté à la douane",
        "held_import": "Retenu par la douane ({country})|Retenu par la douane",
        "import_customs_cleared": "Dédouané ({country})|Dédouané",
        "received_at_hub": "Reçu à {place}|Reçu au centre de tri",
        "sorted_at_hub": "Trié à {place}|Trié au centre de tri",
        "missorted_at_hub": "Mal aiguillé à {place} : trié à nouveau|Mal aiguillé : trié à nouveau",
        "departed_hub": "Parti de {place}|Parti du centre de tri",
        "handed_to_last_mile": "Remis à {carrier}|Remis au transporteur chargé de la livraison",
        "at_delivery_office": "Arrivé à {place}|Arrivé au bureau de distribution",
        "out_for_delivery": "En cours de livraison par {carrier}|En cours de livraison",
        "attempt_failed": "Échec de la tentative de livraison",
        "at_pickup_point": "Disponible au point de retrait {place}|Disponible au point de retrait",
        "delivered": "Livré",
        "returning_to_sender": "En retour vers l'expéditeur",
        "returned_to_sender": "Retourné à l'expéditeur",
        "lost": "Déclaré perdu",
        "damaged": "Déclaré endommagé",
        "carrier_information": "Information du transporteur à {place}|Information du transporteur",
    },
    "nl": {
        "order_created": "Bestelling geplaatst: de verkoper heeft het pakket aangemeld",
        "received_at_origin": "Ontvangen in {place}|Ontvangen in het magazijn van de afzender",
        "sorted_at_origin": "Gesorteerd en verpakt in {place}|Gesorteerd en verpakt voor verzending",
        "export_customs_presented": "Aangeboden aan de exportdouane ({country})|Aangeboden aan de exportdouane",
        "export_customs_cleared": "Vrijgegeven door de exportdouane ({country})|Vrijgegeven door de exportdouane",
        "held_export": "Tegengehouden door de exportdouane ({country})|Tegengehouden door de exportdouane",
        "export_cancelled": "Export geannuleerd",
        "linehaul_booked": "Geboekt op een vlucht, trein of schip vanuit {place}|Geboekt op een vlucht, trein of schip",
        "received_by_linehaul": "Overgedragen aan de vervoerder in {place}|Overgedragen aan de vervoerder",
        "linehaul_manifested": "Geladen voor vertrek in {place}|Geladen voor vertrek",
        "departed_origin": "Vertrokken uit {place}|Vertrokken",
        "arrived_at_transit": "Aangekomen in {place} (transit)|Aangekomen op een transitpunt",
        "departed_transit": "Vertrokken uit {place} (transit)|Vertrokken van een transitpunt",
        "arrived_at_destination": "Aangekomen in {place}|Aangekomen in het land van bestemming",
        "unloaded_at_destination": "Uitgeladen in {place}|Uitgeladen op de bestemming",
        "linehaul_discrepancy": "Niet alle stukken aangekomen in {place}: wordt nagekeken"
        "|Niet alle stukken aangekomen: wordt nagekeken",
        "import_customs_presented": "Aangeboden aan de douane ({country})|Aangeboden aan de douane",
        "held_import": "Tegengehouden door de douane ({country})|Tegengehouden door de douane",
        "import_customs_cleared": "Vrijgegeven door de douane ({country})|Vrijgegeven door de douane",
        "received_at_hub": "Ontvangen in {place}|Ontvangen in het sorteercentrum",
        "sorted_at_hub": "Gesorteerd in {place}|Gesorteerd in het sorteercentrum",
        "missorted_at_hub": "Verkeerd gesorteerd in {place}: opnieuw gesorteerd"
        "|Verkeerd gesorteerd: opnieuw gesorteerd",
        "departed_hub": "Vertrokken uit {place}|Vertrokken uit het sorteercentrum",
        "handed_to_last_mile": "Overgedragen aan {carrier}|Overgedragen aan de bezorger",
        "at_delivery_office": "Aangekomen in {place}|Aangekomen in het bezorgdepot",
        "out_for_delivery": "Wordt bezorgd door {carrier}|Wordt bezorgd",
        "attempt_failed": "Bezorgpoging mislukt",
        "at_pickup_point": "Klaar om op te halen in {place}|Klaar om op te halen",
        "delivered": "Bezorgd",
        "returning_to_sender": "Onderweg terug naar de afzender",
        "returned_to_sender": "Teruggestuurd naar de afzender",
        "lost": "Als verloren gemeld",
        "damaged": "Als beschadigd gemeld",
        "carrier_information": "Bericht van de vervoerder in {place}|Bericht van de vervoerder",
    },
    "de": {
        "order_created": "Bestellung aufgegeben: der Verkäufer hat das Paket angemeldet",
        "received_at_origin": "Eingegangen in {place}|Im Lager des Absenders eingegangen",
        "sorted_at_origin": "Sortiert und verpackt in {place}|Für den Versand sortiert und verpackt",
        "export_customs_presented": "Dem Ausfuhrzoll gestellt ({country})|Dem Ausfuhrzoll gestellt",
        "export_customs_cleared": "Vom Ausfuhrzoll freigegeben ({country})|Vom Ausfuhrzoll freigegeben",
        "held_export": "Vom Ausfuhrzoll angehalten ({country})|Vom Ausfuhrzoll angehalten",
        "export_cancelled": "Ausfuhr storniert",
        "linehaul_booked": "Auf einen Flug, Zug oder ein Schiff ab {place} gebucht"
        "|Auf einen Flug, Zug oder ein Schiff gebucht",
        "received_by_linehaul": "An das Transportunternehmen übergeben in {place}"
        "|An das Transportunternehmen übergeben",
        "linehaul_manifested": "Zur Abfahrt verladen in {place}|Zur Abfahrt verladen",
        "departed_origin": "Abgereist von {place}|Abgereist",
        "arrived_at_transit": "Im Transit angekommen in {place}|An einem Transitpunkt angekommen",
        "departed_transit": "Im Transit abgereist von {place}|Von einem Transitpunkt abgereist",
        "arrived_at_destination": "Angekommen in {place}|Im Zielland angekommen",
        "unloaded_at_destination": "Entladen in {place}|Am Ziel entladen",
        "linehaul_discrepancy": "Nicht alle Teile in {place} angekommen: wird geprüft"
        "|Nicht alle Teile angekommen: wird geprüft",
        "import_customs_presented": "Dem Zoll gestellt ({country})|Dem Zoll gestellt",
        "held_import": "Vom Zoll angehalten ({country})|Vom Zoll angehalten",
        "import_customs_cleared": "Vom Zoll freigegeben ({country})|Vom Zoll freigegeben",
        "received_at_hub": "Eingegangen in {place}|Im Sortierzentrum eingegangen",
        "sorted_at_hub": "Sortiert in {place}|Im Sortierzentrum sortiert",
        "missorted_at_hub": "Falsch sortiert in {place}: wird neu sortiert|Falsch sortiert: wird neu sortiert",
        "departed_hub": "Abgereist von {place}|Hat das Sortierzentrum verlassen",
        "handed_to_last_mile": "An {carrier} übergeben|An den Zusteller übergeben",
        "at_delivery_office": "Angekommen in {place}|In der Zustellbasis angekommen",
        "out_for_delivery": "In Zustellung durch {carrier}|In Zustellung",
        "attempt_failed": "Zustellversuch gescheitert",
        "at_pickup_point": "Abholbereit in {place}|Abholbereit",
        "delivered": "Zugestellt",
        "returning_to_sender": "Auf dem Rückweg zum Absender",
        "returned_to_sender": "An den Absender zurückgesendet",
        "lost": "Als verloren gemeldet",
        "damaged": "Als beschädigt gemeldet",
        "carrier_information": "Meldung des Transportunternehmens in {place}|Meldung des Transportunternehmens",
    },
    "zh": {
        "order_created": "已下单：卖家已登记包裹信息",
        "received_at_origin": "已在{place}收件|已在发件仓库收件",
        "sorted_at_origin": "已在{place}分拣打包|已分拣打包",
        "export_customs_presented": "已向{country}出口海关申报|已向出口海关申报",
        "export_customs_cleared": "{country}出口海关已放行|出口海关已放行",
        "held_export": "被{country}出口海关扣留|被出口海关扣留",
        "export_cancelled": "出口已取消",
        "linehaul_booked": "已预订从{place}出发的航班、班列或船舶|已预订航班、班列或船舶",
        "received_by_linehaul": "已在{place}交给承运商|已交给承运商",
        "linehaul_manifested": "已在{place}装载待发|已装载待发",
        "departed_origin": "已从{place}发出|已发出",
        "arrived_at_transit": "已到达中转地{place}|已到达中转地",
        "departed_transit": "已离开中转地{place}|已离开中转地",
        "arrived_at_destination": "已到达{place}|已到达目的国",
        "unloaded_at_destination": "已在{place}卸货|已在目的地卸货",
        "linehaul_discrepancy": "在{place}到货不全，正在核查|到货不全，正在核查",
        "import_customs_presented": "已向{country}海关申报|已向海关申报",
        "held_import": "被{country}海关扣留|被海关扣留",
        "import_customs_cleared": "{country}海关已放行|海关已放行",
        "received_at_hub": "已到达{place}|已到达分拣中心",
        "sorted_at_hub": "已在{place}分拣|已在分拣中心分拣",
        "missorted_at_hub": "在{place}分错道口，已重新分拣|分错道口，已重新分拣",
        "departed_hub": "已离开{place}|已离开分拣中心",
        "handed_to_last_mile": "已交给{carrier}|已交给派送公司",
        "at_delivery_office": "已到达{place}|已到达派送网点",
        "out_for_delivery": "{carrier}正在派送|正在派送",
        "attempt_failed": "投递未成功",
        "at_pickup_point": "已到达{place}，可取件|可取件",
        "delivered": "已签收",
        "returning_to_sender": "正在退回发件人",
        "returned_to_sender": "已退回发件人",
        "lost": "已报丢失",
        "damaged": "已报损坏",
        "carrier_information": "承运商在{place}更新了信息|承运商更新了信息",
    },
}

#: The linehaul steps when the parcel's movement is known (``movement`` of the view: the tracking
#: service reads it from the movement board, ``consumers/movements.py``): per language, per sub-status,
#: variants as in ``STEP_MESSAGES`` naming the flight, block train or sea container, with the place
#: first; when none fits (no movement, or a kind without a variant) the step reads as ``STEP_MESSAGES``.
MOVEMENT_STEP_MESSAGES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "linehaul_manifested": "Loaded on flight {flight} at {place}|Loaded on block train {train} at {place}"
        "|Loaded into sea container {container} at {place}"
        "|Loaded on flight {flight}|Loaded on block train {train}|Loaded into sea container {container}",
        "departed_origin": "Departed {place} on flight {flight}|Departed {place} by block train {train}"
        "|Departed {place} in sea container {container}"
        "|Departed on flight {flight}|Departed by block train {train}|Departed in sea container {container}",
        "arrived_at_transit": "Arrived at {place} in transit on flight {flight}"
        "|Arrived at {place} in transit by block train {train}"
        "|Arrived at {place} in transit in sea container {container}"
        "|Arrived at a transit point on flight {flight}|Arrived at a transit point by block train {train}"
        "|Arrived at a transit point in sea container {container}",
        "departed_transit": "Left {place} in transit on flight {flight}|Left {place} in transit by block train {train}"
        "|Left {place} in transit in sea container {container}"
        "|Left a transit point on flight {flight}|Left a transit point by block train {train}"
        "|Left a transit point in sea container {container}",
        "arrived_at_destination": "Arrived at {place} on flight {flight}|Arrived at {place} by block train {train}"
        "|Arrived at {place} in sea container {container}"
        "|Arrived in the destination country on flight {flight}"
        "|Arrived in the destination country by block train {train}"
        "|Arrived in the destination country in sea container {container}",
        "unloaded_at_destination": "Unloaded from flight {flight} at {place}"
        "|Unloaded from block train {train} at {place}|Unloaded from sea container {container} at {place}"
        "|Unloaded from flight {flight}|Unloaded from block train {train}|Unloaded from sea container {container}",
    },
    "fr": {
        "linehaul_manifested": "Chargé sur le vol {flight} à {place}|Chargé sur le train-bloc {train} à {place}"
        "|Chargé dans le conteneur maritime {container} à {place}"
        "|Chargé sur le vol {flight}|Chargé sur le train-bloc {train}|Chargé dans le conteneur maritime {container}",
        "departed_origin": "Parti de {place} sur le vol {flight}|Parti de {place} par le train-bloc {train}"
        "|Parti de {place} dans le conteneur maritime {container}"
        "|Parti sur le vol {flight}|Parti par le train-bloc {train}|Parti dans le conteneur maritime {container}",
        "arrived_at_transit": "Arrivé en transit à {place} sur le vol {flight}"
        "|Arrivé en transit à {place} par le train-bloc {train}"
        "|Arrivé en transit à {place} dans le conteneur maritime {container}"
        "|Arrivé à un point de transit sur le vol {flight}|Arrivé à un point de transit par le train-bloc {train}"
        "|Arrivé à un point de transit dans le conteneur maritime {container}",
        "departed_transit": "Reparti de {place} (transit) sur le vol {flight}"
        "|Reparti de {place} (transit) par le train-bloc {train}"
        "|Reparti de {place} (transit) dans le conteneur maritime {container}"
        "|Reparti d'un point de transit sur le vol {flight}|Reparti d'un point de transit par le train-bloc {train}"
        "|Reparti d'un point de transit dans le conteneur maritime {container}",
        "arrived_at_destination": "Arrivé à {place} sur le vol {flight}|Arrivé à {place} par le train-bloc {train}"
        "|Arrivé à {place} dans le conteneur maritime {container}"
        "|Arrivé dans le pays de destination sur le vol {flight}"
        "|Arrivé dans le pays de destination par le train-bloc {train}"
        "|Arrivé dans le pays de destination dans le conteneur maritime {container}",
        "unloaded_at_destination": "Déchargé du vol {flight} à {place}|Déchargé du train-bloc {train} à {place}"
        "|Déchargé du conteneur maritime {container} à {place}"
        "|Déchargé du vol {flight}|Déchargé du train-bloc {train}|Déchargé du conteneur maritime {container}",
    },
    "nl": {
        "linehaul_manifested": "Geladen op vlucht {flight} in {place}|Geladen op bloktrein {train} in {place}"
        "|Geladen in zeecontainer {container} in {place}"
        "|Geladen op vlucht {flight}|Geladen op bloktrein {train}|Geladen in zeecontainer {container}",
        "departed_origin": "Vertrokken uit {place} met vlucht {flight}|Vertrokken uit {place} met bloktrein {train}"
        "|Vertrokken uit {place} in zeecontainer {container}"
        "|Vertrokken met vlucht {flight}|Vertrokken met bloktrein {train}|Vertrokken in zeecontainer {container}",
        "arrived_at_transit": "Aangekomen in {place} (transit) met vlucht {flight}"
        "|Aangekomen in {place} (transit) met bloktrein {train}"
        "|Aangekomen in {place} (transit) in zeecontainer {container}"
        "|Aangekomen op een transitpunt met vlucht {flight}|Aangekomen op een transitpunt met bloktrein {train}"
        "|Aangekomen op een transitpunt in zeecontainer {container}",
        "departed_transit": "Vertrokken uit {place} (transit) met vlucht {flight}"
        "|Vertrokken uit {place} (transit) met bloktrein {train}"
        "|Vertrokken uit {place} (transit) in zeecontainer {container}"
        "|Vertrokken van een transitpunt met vlucht {flight}|Vertrokken van een transitpunt met bloktrein {train}"
        "|Vertrokken van een transitpunt in zeecontainer {container}",
        "arrived_at_destination": "Aangekomen in {place} met vlucht {flight}"
        "|Aangekomen in {place} met bloktrein {train}"
        "|Aangekomen in {place} in zeecontainer {container}"
        "|Aangekomen in het land van bestemming met vlucht {flight}"
        "|Aangekomen in het land van bestemming met bloktrein {train}"
        "|Aangekomen in het land van bestemming in zeecontainer {container}",
        "unloaded_at_destination": "Uitgeladen uit vlucht {flight} in {place}"
        "|Uitgeladen uit bloktrein {train} in {place}|Uitgeladen uit zeecontainer {container} in {place}"
        "|Uitgeladen uit vlucht {flight}|Uitgeladen uit bloktrein {train}|Uitgeladen uit zeecontainer {container}",
    },
    "de": {
        "linehaul_manifested": "Auf Flug {flight} verladen in {place}|Auf Ganzzug {train} verladen in {place}"
        "|In Seecontainer {container} verladen in {place}"
        "|Auf Flug {flight} verladen|Auf Ganzzug {train} verladen|In Seecontainer {container} verladen",
        "departed_origin": "Mit Flug {flight} abgereist von {place}|Mit Ganzzug {train} abgereist von {place}"
        "|In Seecontainer {container} abgereist von {place}"
        "|Mit Flug {flight} abgereist|Mit Ganzzug {train} abgereist|In Seecontainer {container} abgereist",
        "arrived_at_transit": "Mit Flug {flight} im Transit angekommen in {place}"
        "|Mit Ganzzug {train} im Transit angekommen in {place}"
        "|In Seecontainer {container} im Transit angekommen in {place}"
        "|Mit Flug {flight} an einem Transitpunkt angekommen|Mit Ganzzug {train} an einem Transitpunkt angekommen"
        "|In Seecontainer {container} an einem Transitpunkt angekommen",
        "departed_transit": "Mit Flug {flight} im Transit abgereist von {place}"
        "|Mit Ganzzug {train} im Transit abgereist von {place}"
        "|In Seecontainer {container} im Transit abgereist von {place}"
        "|Mit Flug {flight} von einem Transitpunkt abgereist|Mit Ganzzug {train} von einem Transitpunkt abgereist"
        "|In Seecontainer {container} von einem Transitpunkt abgereist",
        "arrived_at_destination": "Mit Flug {flight} angekommen in {place}|Mit Ganzzug {train} angekommen in {place}"
        "|In Seecontainer {container} angekommen in {place}"
        "|Mit Flug {flight} im Zielland angekommen|Mit Ganzzug {train} im Zielland angekommen"
        "|In Seecontainer {container} im Zielland angekommen",
        "unloaded_at_destination": "Aus Flug {flight} entladen in {place}|Aus Ganzzug {train} entladen in {place}"
        "|Aus Seecontainer {container} entladen in {place}"
        "|Aus Flug {flight} entladen|Aus Ganzzug {train} entladen|Aus Seecontainer {container} entladen",
    },
    "zh": {
        "linehaul_manifested": "已在{place}装上航班{flight}|已在{place}装上班列{train}"
        "|已在{place}装入海运集装箱{container}|已装上航班{flight}|已装上班列{train}|已装入海运集装箱{container}",
        "departed_origin": "已搭乘航班{flight}从{place}发出|已搭乘班列{train}从{place}发出"
        "|已装在海运集装箱{container}中从{place}发出"
        "|已搭乘航班{flight}发出|已搭乘班列{train}发出|已装在海运集装箱{container}中发出",
        "arrived_at_transit": "已搭乘航班{flight}到达中转地{place}|已搭乘班列{train}到达中转地{place}"
        "|已装在海运集装箱{container}中到达中转地{place}"
        "|已搭乘航班{flight}到达中转地|已搭乘班列{train}到达中转地|已装在海运集装箱{container}中到达中转地",
        "departed_transit": "已搭乘航班{flight}离开中转地{place}|已搭乘班列{train}离开中转地{place}"
        "|已装在海运集装箱{container}中离开中转地{place}"
        "|已搭乘航班{flight}离开中转地|已搭乘班列{train}离开中转地|已装在海运集装箱{container}中离开中转地",
        "arrived_at_destination": "已搭乘航班{flight}到达{place}|已搭乘班列{train}到达{place}"
        "|已装在海运集装箱{container}中到达{place}"
        "|已搭乘航班{flight}到达目的国|已搭乘班列{train}到达目的国|已装在海运集装箱{container}中到达目的国",
        "unloaded_at_destination": "已在{place}从航班{flight}卸货|已在{place}从班列{train}卸货"
        "|已在{place}从海运集装箱{container}卸货"
        "|已从航班{flight}卸货|已从班列{train}卸货|已从海运集装箱{container}卸货",
    },
}
#: The placeholder of each movement kind (``consumers.movements.MOVEMENT_KINDS``) in those messages.
MOVEMENT_PLACEHOLDERS: Final[dict[str, str]] = {"flight": "flight", "train": "train", "sea": "container"}

#: Milestone bar: keys in journey order; labels may name the origin or destination country.
MILESTONE_KEYS: Final[tuple[str, ...]] = (
    "ordered",
    "departed",
    "arrived",
    "customs_cleared",
    "at_hub",
    "out_for_delivery",
    "delivered",
)

#: Which milestone a scan code reaches; codes that reach none (exceptions) are absent.
MILESTONE_OF_CODE: Final[dict[str, str]] = {
    "ORDER_CREATED": "ordered",
    "ORIGIN_RECEIVED": "ordered",
    "ORIGIN_SORTED": "ordered",
    "EXPORT_CUSTOMS_PRESENTED": "ordered",
    "EXPORT_CUSTOMS_CLEARED": "ordered",
    "EXPORT_CUSTOMS_HELD": "ordered",
    "LINEHAUL_BOOKED": "ordered",
    "LINEHAUL_RECEIVED": "ordered",
    "LINEHAUL_MANIFESTED": "ordered",
    "LINEHAUL_DEPARTED": "departed",
    "TRANSIT_ARRIVED": "departed",
    "TRANSIT_DEPARTED": "departed",
    "LINEHAUL_ARRIVED": "arrived",
    "LINEHAUL_UNLOADED": "arrived",
    "LINEHAUL_DISCREPANCY": "arrived",
    "IMPORT_CUSTOMS_PRESENTED": "arrived",
    "IMPORT_CUSTOMS_HELD": "arrived",
    "IMPORT_CUSTOMS_CLEARED": "customs_cleared",
    "HUB_RECEIVED": "at_hub",
    "HUB_SORTED": "at_hub",
    "HUB_MISSORTED": "at_hub",
    "HUB_DEPARTED": "at_hub",
    "LASTMILE_HANDOVER": "at_hub",
    "LASTMILE_RECEIVED": "at_hub",
    "OUT_FOR_DELIVERY": "out_for_delivery",
    "DELIVERY_ATTEMPT_FAILED": "out_for_delivery",
    "AVAILABLE_FOR_PICKUP": "out_for_delivery",
    "DELIVERED": "delivered",
}

MILESTONE_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "ordered": "Ordered",
        "departed": "Left {country}|Left the origin country",
        "arrived": "Arrived in {country}|Arrived in the destination country",
        "customs_cleared": "Customs cleared",
        "at_hub": "At the hub",
        "out_for_delivery": "Out for delivery",
        "delivered": "Delivered",
    },
    "fr": {
        "ordered": "Commandé",
        "departed": "Parti de {country}|Parti du pays d'origine",
        "arrived": "Arrivé : {country}|Arrivé dans le pays de destination",
        "customs_cleared": "Dédouané",
        "at_hub": "Au centre de tri",
        "out_for_delivery": "En livraison",
        "delivered": "Livré",
    },
    "nl": {
        "ordered": "Besteld",
        "departed": "Vertrokken uit {country}|Vertrokken uit het land van herkomst",
        "arrived": "Aangekomen in {country}|Aangekomen in het land van bestemming",
        "customs_cleared": "Douane vrijgegeven",
        "at_hub": "In het sorteercentrum",
        "out_for_delivery": "Wordt bezorgd",
        "delivered": "Bezorgd",
    },
    "de": {
        "ordered": "Bestellt",
        "departed": "Abgereist: {country}|Herkunftsland verlassen",
        "arrived": "Angekommen: {country}|Im Zielland angekommen",
        "customs_cleared": "Verzollt",
        "at_hub": "Im Sortierzentrum",
        "out_for_delivery": "In Zustellung",
        "delivered": "Zugestellt",
    },
    "zh": {
        "ordered": "已下单",
        "departed": "已离开{country}|已离开始发国",
        "arrived": "已到达{country}|已到达目的国",
        "customs_cleared": "清关完成",
        "at_hub": "已到分拣中心",
        "out_for_delivery": "派送中",
        "delivered": "已签收",
    },
}

#: Exceptions flagged on the bar: a title and what the customer can do.
FLAGS: Final[dict[str, dict[str, tuple[str, str]]]] = {
    "en": {
        "customs_hold": (
            "Held by customs",
            "Customs may need the invoice or your IOSS or tax number: answer any message from the delivery"
            " company or the seller quickly.",
        ),
        "attempt_failed": (
            "Delivery attempt failed",
            "Follow the notice left by the driver, or contact the delivery company to choose a new day"
            " or a pickup point.",
        ),
        "returning": ("Going back to the sender", "Contact the seller for a new shipment or a refund."),
        "lost_or_damaged": ("Lost or damaged", "Contact the seller: they will send a new parcel or refund you."),
        "checking": ("Being checked", "Nothing to do for now: we will update this page."),
        "expired": ("No news for a long time", "Contact the seller to find out where the parcel is."),
    },
    "fr": {
        "customs_hold": (
            "Retenu par la douane",
            "La douane peut demander la facture ou votre numéro IOSS ou fiscal : répondez vite au"
            " transporteur ou au vendeur.",
        ),
        "attempt_failed": (
            "Échec de la livraison",
            "Suivez l'avis laissé par le livreur ou contactez le transporteur pour choisir un autre jour"
            " ou un point de retrait.",
        ),
        "returning": ("Retour à l'expéditeur", "Contactez le vendeur pour un nouvel envoi ou un remboursement."),
        "lost_or_damaged": ("Perdu ou endommagé", "Contactez le vendeur : il renverra le colis ou vous remboursera."),
        "checking": ("Vérification en cours", "Rien à faire pour l'instant : cette page sera mise à jour."),
        "expired": ("Aucune nouvelle depuis longtemps", "Contactez le vendeur pour savoir où se trouve le colis."),
    },
    "nl": {
        "customs_hold": (
            "Tegengehouden door de douane",
            "De douane kan de factuur of je IOSS- of btw-nummer vragen: beantwoord berichten van de bezorger"
            " of de verkoper snel.",
        ),
        "attempt_failed": (
            "Bezorgpoging mislukt",
            "Volg het bericht van de bezorger of neem contact op met de bezorger om een nieuwe dag of een"
            " afhaalpunt te kiezen.",
        ),
        "returning": (
            "Terug naar de afzender",
            "Neem contact op met de verkoper voor een nieuwe zending of terugbetaling.",
        ),
        "lost_or_damaged": (
            "Verloren of beschadigd",
            "Neem contact op met de verkoper: die stuurt een nieuw pakket of betaalt je terug.",
        ),
        "checking": ("Wordt nagekeken", "Je hoeft nu niets te doen: deze pagina wordt bijgewerkt."),
        "expired": ("Lang geen nieuws", "Neem contact op met de verkoper om te weten waar het pakket is."),
    },
    "de": {
        "customs_hold": (
            "Vom Zoll angehalten",
            "Der Zoll kann die Rechnung oder Ihre IOSS- oder Steuernummer verlangen: antworten Sie rasch auf"
            " Nachrichten des Zustellers oder des Verkäufers.",
        ),
        "attempt_failed": (
            "Zustellversuch gescheitert",
            "Folgen Sie der Benachrichtigung des Zustellers oder wählen Sie beim Zusteller einen neuen Tag"
            " oder eine Abholstelle.",
        ),
        "returning": (
            "Zurück an den Absender",
            "Wenden Sie sich an den Verkäufer für eine neue Sendung oder eine Erstattung.",
        ),
        "lost_or_damaged": (
            "Verloren oder beschädigt",
            "Wenden Sie sich an den Verkäufer: er schickt ein neues Paket oder erstattet den Betrag.",
        ),
        "checking": ("Wird geprüft", "Sie müssen nichts tun: diese Seite wird aktualisiert."),
        "expired": ("Lange keine Neuigkeiten", "Fragen Sie beim Verkäufer nach, wo das Paket ist."),
    },
    "zh": {
        "customs_hold": ("海关扣留", "海关可能需要发票或您的 IOSS 号/税号：请尽快回复派送公司或卖家的消息。"),
        "attempt_failed": ("投递未成功", "请按派送员留下的通知操作，或联系派送公司另选日期或自提点。"),
        "returning": ("正在退回发件人", "请联系卖家重新发货或退款。"),
        "lost_or_damaged": ("丢失或损坏", "请联系卖家：卖家将重新发货或退款。"),
        "checking": ("正在核查", "暂时无需操作：本页面会自动更新。"),
        "expired": ("长时间无更新", "请联系卖家了解包裹下落。"),
    },
}

_FLAG_OF_SUB_STATUS: Final[dict[str, str]] = {
    "held_export": "customs_hold",
    "held_import": "customs_hold",
    "attempt_failed": "attempt_failed",
    "returning_to_sender": "returning",
    "returned_to_sender": "returning",
    "export_cancelled": "returning",
    "lost": "lost_or_damaged",
    "damaged": "lost_or_damaged",
    "linehaul_discrepancy": "checking",
}
_FLAG_OF_STATUS: Final[dict[str, str]] = {
    "CustomsHold": "customs_hold",
    "AttemptFail": "attempt_failed",
    "Exception": "lost_or_damaged",
    "Expired": "expired",
}
#: Flags after which the parcel will not reach the customer: the delivery line gives no date.
_NOT_DELIVERING: Final = frozenset({"returning", "lost_or_damaged", "expired"})

DELIVERY_TEXTS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "delivered": "Delivered on {when}",
        "window": "Expected {window}",
        "late": "Running late: {reasons}",
        "late_window": "Running late: {reasons}. Now expected {window}",
        "customs": "A delivery date will follow once customs release the parcel",
        "not_delivering": "This parcel is not being delivered",
        "unknown": "No delivery estimate yet",
    },
    "fr": {
        "delivered": "Livré le {when}",
        "window": "Livraison prévue {window}",
        "late": "En retard : {reasons}",
        "late_window": "En retard : {reasons}. Livraison désormais prévue {window}",
        "customs": "Une date de livraison suivra dès que la douane aura libéré le colis",
        "not_delivering": "Ce colis ne sera pas livré",
        "unknown": "Pas encore d'estimation de livraison",
    },
    "nl": {
        "delivered": "Bezorgd op {when}",
        "window": "Verwacht {window}",
        "late": "Vertraagd: {reasons}",
        "late_window": "Vertraagd: {reasons}. Nu verwacht {window}",
        "customs": "Een bezorgdatum volgt zodra de douane het pakket vrijgeeft",
        "not_delivering": "Dit pakket wordt niet bezorgd",
        "unknown": "Nog geen verwachte bezorgdatum",
    },
    "de": {
        "delivered": "Zugestellt am {when}",
        "window": "Erwartet {window}",
        "late": "Verspätet: {reasons}",
        "late_window": "Verspätet: {reasons}. Jetzt erwartet {window}",
        "customs": "Ein Zustelltermin folgt, sobald der Zoll das Paket freigibt",
        "not_delivering": "Dieses Paket wird nicht zugestellt",
        "unknown": "Noch kein voraussichtlicher Zustelltermin",
    },
    "zh": {
        "delivered": "已于{when}签收",
        "window": "预计{window}送达",
        "late": "延误：{reasons}",
        "late_window": "延误：{reasons}。现预计{window}送达",
        "customs": "海关放行后将提供预计送达日期",
        "not_delivering": "此包裹不会派送",
        "unknown": "暂无预计送达日期",
    },
}

#: The latest move of the estimated window (``estimate_moved`` of the public view): from which
#: window to which, on which day, and the step that moved it (its step message).
MOVED_TEXTS: Final[dict[str, str]] = {
    "en": "Estimated delivery moved from {before} to {after} on {day}: {reason}",
    "fr": "Livraison prévue déplacée de {before} à {after} le {day} : {reason}",
    "nl": "Verwachte bezorging verschoven van {before} naar {after} op {day}: {reason}",
    "de": "Voraussichtliche Zustellung am {day} von {before} auf {after} verschoben: {reason}",
    "zh": "预计送达时间于{day}从{before}调整为{after}：{reason}",
}
#: Languages whose step messages read mid-sentence with a lower-case first letter (German nouns
#: keep theirs; Chinese has none).
_LOWER_MID_SENTENCE: Final = frozenset({"en", "fr", "nl"})

#: Why a parcel runs late, per SLA rule it has breached (``schemas.sla.SLA_RULES``).
DELAY_REASONS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "promise": "later than the delivery promised by the seller",
        "customs_clearance": "customs clearance is taking longer than usual",
        "hub_dwell": "the parcel is waiting longer than usual at the hub",
        "last_mile_delivery": "the delivery company is taking longer than usual",
        "silence": "we have had no news of the parcel for a while",
    },
    "fr": {
        "promise": "après la date promise par le vendeur",
        "customs_clearance": "le dédouanement prend plus de temps que d'habitude",
        "hub_dwell": "le colis attend plus longtemps que d'habitude au centre de tri",
        "last_mile_delivery": "le transporteur met plus de temps que d'habitude",
        "silence": "aucune nouvelle du colis depuis un moment",
    },
    "nl": {
        "promise": "later dan de door de verkoper beloofde bezorging",
        "customs_clearance": "de douaneafhandeling duurt langer dan normaal",
        "hub_dwell": "het pakket wacht langer dan normaal in het sorteercentrum",
        "last_mile_delivery": "de bezorger doet er langer over dan normaal",
        "silence": "we hebben al een tijd niets van het pakket gehoord",
    },
    "de": {
        "promise": "später als vom Verkäufer zugesagt",
        "customs_clearance": "die Verzollung dauert länger als üblich",
        "hub_dwell": "das Paket wartet länger als üblich im Sortierzentrum",
        "last_mile_delivery": "der Zusteller braucht länger als üblich",
        "silence": "seit einer Weile gibt es keine Neuigkeiten zum Paket",
    },
    "zh": {
        "promise": "晚于卖家承诺的送达时间",
        "customs_clearance": "清关时间比平时长",
        "hub_dwell": "包裹在分拣中心停留时间比平时长",
        "last_mile_delivery": "派送公司用时比平时长",
        "silence": "包裹已有一段时间没有更新",
    },
}

#: How a step's message and the carrier's reason join, and how reasons are listed.
_WITH_REASON: Final = {"en": "{}: {}", "fr": "{} : {}", "nl": "{}: {}", "de": "{}: {}", "zh": "{}：{}"}
_LIST_SEPARATOR: Final = {"en": "; ", "fr": " ; ", "nl": "; ", "de": "; ", "zh": "；"}

#: Carriers' display names where the code is not how customers know them.
CARRIER_NAMES: Final[dict[str, str]] = {"BPOST": "bpost", "POSTNL": "PostNL", "CNPOST": "China Post"}
_LAST_MILE_CODES: Final = frozenset(
    {"LASTMILE_RECEIVED", "OUT_FOR_DELIVERY", "DELIVERY_ATTEMPT_FAILED", "AVAILABLE_FOR_PICKUP", "DELIVERED"}
)


@dataclass(frozen=True, slots=True)
class Step:
    """One history entry as the customer reads it."""

    message: str
    time: str  # local time at the place, with its UTC offset
    iso_time: str  # the same instant, ISO 8601 with the offset (for <time datetime>)
    place: str | None  # shown beside the message when the message does not name it
    code: str
    status: str


@dataclass(frozen=True, slots=True)
class Milestone:
    key: str
    label: str
    state: str  # "done", "current" or "todo"


@dataclass(frozen=True, slots=True)
class Flag:
    kind: str
    title: str
    advice: str


@dataclass(frozen=True, slots=True)
class DeliveryLine:
    kind: str  # "delivered", "window", "late", "customs", "not_delivering" or "unknown"
    text: str
    moved: str | None = None  # when and why the estimated window last moved (``MOVED_TEXTS``)


@dataclass(frozen=True, slots=True)
class Journey:
    status: str
    status_name: str
    steps: tuple[Step, ...]  # newest first
    milestones: tuple[Milestone, ...]
    flag: Flag | None
    delivery: DeliveryLine


def supported(language: str) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def status_name(status: str, language: str) -> str:
    """The customer-facing name of a status; unknown statuses keep their code."""
    return STATUS_NAMES[supported(language)].get(status, status)


def _first_fit(variants: str, values: Mapping[str, str | None]) -> tuple[str, set[str]] | None:
    """The first variant whose placeholders all have a value, and the placeholders it used."""
    for option in variants.split("|"):
        fields = {name for _, name, _, _ in string.Formatter().parse(option) if name}
        if all(values.get(name) for name in fields):
            return option.format(**{name: values[name] for name in fields}), fields
    return None


def _fill(variants: str, values: Mapping[str, str | None]) -> tuple[str, set[str]]:
    """As ``_first_fit``, falling back to the last variant."""
    return _first_fit(variants, values) or (variants.rsplit("|", maxsplit=1)[-1], set())


@cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


def country_name(code: str | None, language: str) -> str | None:
    if not code:
        return None
    return _locale(supported(language)).territories.get(code.upper(), code)


def place_name(location: Mapping[str, Any] | None, language: str) -> str | None:
    """How a place is written: its name (airports with their IATA code), then the country."""
    if not location:
        return None
    code, name = location.get("code") or "", location.get("name")
    if name and location.get("kind") == "airport" and code and code not in name:
        place = f"{name} ({code})"
    else:
        place = name or code
    country = country_name(location.get("country"), language)
    if country and country not in place:
        place = f"{place}, {country}"
    return place or None


def carrier_name(code: str | None) -> str | None:
    if not code:
        return None
    return CARRIER_NAMES.get(code.upper(), code)


def _zone(utc_offset_minutes: int) -> timezone:
    return timezone(timedelta(minutes=utc_offset_minutes)) if utc_offset_minutes else UTC


def offset_text(utc_offset_minutes: int) -> str:
    """``UTC+1``, ``UTC-3:30``, ``UTC``."""
    if not utc_offset_minutes:
        return "UTC"
    sign = "+" if utc_offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(utc_offset_minutes), 60)
    return f"UTC{sign}{hours}" + (f":{minutes:02d}" if minutes else "")


def local_datetime(event_time_ms: int, utc_offset_minutes: int) -> datetime:
    return datetime.fromtimestamp(event_time_ms / 1000, tz=_zone(utc_offset_minutes))


def local_time(event_time_ms: int, utc_offset_minutes: int, language: str) -> str:
    """The event's local time at its place with the offset, e.g. ``Tue, Dec 8, 2026 14:05 (UTC+1)``."""
    language = supported(language)
    moment = local_datetime(event_time_ms, utc_offset_minutes)
    day = format_skeleton("yMMMEd", moment, locale=language)
    clock = format_time(moment.timetz(), "HH:mm", locale=language)
    return f"{day} {clock} ({offset_text(utc_offset_minutes)})"


def sub_status_of(code: str | None, sub_status: str | None) -> str | None:
    """The vocabulary's sub-status of a step: its own when known, else its code's."""
    if sub_status in SUB_STATUS_OF_CODE.values():
        return sub_status
    return SUB_STATUS_OF_CODE.get(code or "")


def step_message(
    *,
    status: str,
    sub_status: str | None,
    language: str,
    code: str | None = None,
    location: Mapping[str, Any] | None = None,
    carrier: str | None = None,
    reason: str | None = None,
    movement: Mapping[str, Any] | None = None,
) -> tuple[str, bool]:
    """What happened at one step, and whether the message names its place (else show it beside).
    ``movement`` (``{"kind", "reference"}``) names the flight, train or container of a linehaul step."""
    language = supported(language)
    key = sub_status_of(code, sub_status)
    if key is None:
        text, used = status_name(status, language), set()
    else:
        values = {
            "place": place_name(location, language),
            "country": country_name((location or {}).get("country"), language),
            "carrier": carrier_name(carrier),
        }
        fitted = None
        placeholder = MOVEMENT_PLACEHOLDERS.get((movement or {}).get("kind", ""))
        if placeholder and key in MOVEMENT_STEP_MESSAGES[language]:
            movement_values = {**values, placeholder: (movement or {}).get("reference")}
            fitted = _first_fit(MOVEMENT_STEP_MESSAGES[language][key], movement_values)
        text, used = fitted or _fill(STEP_MESSAGES[language][key], values)
    if reason:
        text = _WITH_REASON[language].format(text, reason)
    return text, "place" in used


def _current_entry(view: Mapping[str, Any]) -> Mapping[str, Any] | None:
    history: Sequence[Mapping[str, Any]] = view.get("history") or []
    for entry in reversed(history):
        if entry.get("status") == view.get("status") and entry.get("sub_status") == view.get("sub_status"):
            return entry
    return history[-1] if history else None


def _steps(view: Mapping[str, Any], language: str) -> tuple[Step, ...]:
    history: Sequence[Mapping[str, Any]] = view.get("history") or []
    steps = []
    for index, entry in enumerate(history):
        carrier = entry.get("carrier")
        if entry.get("code") == "LASTMILE_HANDOVER":
            # The hub scans the handover; the last-mile carrier is who scans next.
            later = [e.get("carrier") for e in history[index + 1 :] if e.get("code") in _LAST_MILE_CODES]
            carrier = later[0] if later else None
        message, names_place = step_message(
            status=entry.get("status", ""),
            sub_status=entry.get("sub_status"),
            code=entry.get("code"),
            language=language,
            location=entry.get("location"),
            carrier=carrier,
            reason=entry.get("reason"),
            movement=view.get("movement"),
        )
        offset = int(entry.get("utc_offset_minutes") or 0)
        steps.append(
            Step(
                message=message,
                time=local_time(entry["event_time_ms"], offset, language),
                iso_time=local_datetime(entry["event_time_ms"], offset).isoformat(timespec="minutes"),
                place=None if names_place else place_name(entry.get("location"), language),
                code=entry.get("code", ""),
                status=entry.get("status", ""),
            )
        )
    return tuple(reversed(steps))


def _countries(history: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """Origin and destination countries of the linehaul, from the scans' locations."""
    origin = destination = None
    for entry in history:
        country = (entry.get("location") or {}).get("country")
        milestone = MILESTONE_OF_CODE.get(entry.get("code", ""))
        if country and origin is None and milestone in {"ordered", "departed"}:
            origin = country
        if country and destination is None and milestone in {"arrived", "customs_cleared"}:
            destination = country
    return origin, destination


def flag_of(view: Mapping[str, Any], language: str) -> Flag | None:
    """The exception of the current status, with what the customer can do; None when all is well."""
    kind = _FLAG_OF_SUB_STATUS.get(sub_status_of(None, view.get("sub_status")) or "")
    if kind is None and view.get("status") in _FLAG_OF_STATUS:
        entry = _current_entry(view)
        by_code = _FLAG_OF_SUB_STATUS.get(SUB_STATUS_OF_CODE.get((entry or {}).get("code", ""), ""))
        kind = by_code or _FLAG_OF_STATUS[view["status"]]
    if kind is None:
        return None
    title, advice = FLAGS[supported(language)][kind]
    return Flag(kind, title, advice)


def milestones(view: Mapping[str, Any], language: str) -> tuple[Milestone, ...]:
    language = supported(language)
    history: Sequence[Mapping[str, Any]] = view.get("history") or []
    reached = [MILESTONE_KEYS.index(m) for e in history if (m := MILESTONE_OF_CODE.get(e.get("code", "")))]
    current = max(reached) if reached else 0
    if view.get("status") == "Delivered":
        current = len(MILESTONE_KEYS) - 1
    origin, destination = _countries(history)
    values: dict[str, str | None] = {"country": None}
    bar = []
    for index, key in enumerate(MILESTONE_KEYS):
        values["country"] = country_name(origin if key == "departed" else destination, language)
        label, _ = _fill(MILESTONE_LABELS[language][key], values)
        state = "done" if index < current else "current" if index == current else "todo"
        bar.append(Milestone(key, label, state))
    return tuple(bar)


def _window(estimate: Mapping[str, Any], utc_offset_minutes: int, language: str) -> str:
    zone = _zone(utc_offset_minutes)
    earliest = datetime.fromtimestamp(estimate["earliest_ms"] / 1000, tz=zone).date()
    latest = datetime.fromtimestamp(estimate["latest_ms"] / 1000, tz=zone).date()
    if earliest >= latest:
        return format_skeleton("MMMEd", earliest, locale=language)
    return format_interval(earliest, latest, "MMMEd", locale=language)


def moved_text(move: Mapping[str, Any], utc_offset_minutes: int, language: str) -> str:
    """The sentence of one move of the window (``consumers.read_model.estimate_move``): both windows
    in the local time of ``utc_offset_minutes`` (as the delivery line shows them), the day in the
    moving step's own, and that step's message as the reason."""
    language = supported(language)
    reason, _ = step_message(
        status=move.get("status", ""),
        sub_status=move.get("sub_status"),
        code=move.get("code"),
        language=language,
        location=move.get("location"),
    )
    key = sub_status_of(move.get("code"), move.get("sub_status"))
    starts_with_word = key is not None and not STEP_MESSAGES[language][key].startswith("{")
    if language in _LOWER_MID_SENTENCE and starts_with_word:
        reason = reason[:1].lower() + reason[1:]
    day = local_datetime(move["at_ms"], int(move.get("utc_offset_minutes") or 0)).date()
    return MOVED_TEXTS[language].format(
        before=_window(move["from"], utc_offset_minutes, language),
        after=_window(move["to"], utc_offset_minutes, language),
        day=format_skeleton("MMMd", day, locale=language),
        reason=reason,
    )


def delay_reasons(view: Mapping[str, Any]) -> tuple[str, ...]:
    """Why the parcel runs late: its breached SLA rules, else the promise when it is not on time."""
    breached = set(view.get("delay_reasons") or ())
    reasons = tuple(rule for rule in SLA_RULES if rule in breached)
    if not reasons and view.get("on_time") is False:
        reasons = ("promise",)
    return reasons


def delivery_line(view: Mapping[str, Any], language: str, flag: Flag | None = None) -> DeliveryLine:
    """The delivery line of the rules in the module doc."""
    language = supported(language)
    texts = DELIVERY_TEXTS[language]
    history: Sequence[Mapping[str, Any]] = view.get("history") or []
    if view.get("status") == "Delivered":
        delivered = [e for e in history if e.get("code") == "DELIVERED"] or [_current_entry(view) or {}]
        entry = delivered[-1]
        when_ms = entry.get("event_time_ms", view.get("last_event_time_ms", 0))
        when = local_time(when_ms, int(entry.get("utc_offset_minutes") or 0), language)
        return DeliveryLine("delivered", texts["delivered"].format(when=when))
    if flag is not None and flag.kind in _NOT_DELIVERING:
        return DeliveryLine("not_delivering", texts["not_delivering"])
    reasons = delay_reasons(view)
    reasons_text = _LIST_SEPARATOR[language].join(DELAY_REASONS[language][rule] for rule in reasons)
    estimate = view.get("estimated_delivery")
    offset = int((history[-1] if history else {}).get("utc_offset_minutes") or 0)
    if estimate:
        window = _window(estimate, offset, language)
        move = view.get("estimate_moved")
        moved = moved_text(move, offset, language) if move else None
        if reasons:
            late = texts["late_window"].format(reasons=reasons_text, window=window)
            return DeliveryLine("late", late, moved)
        return DeliveryLine("window", texts["window"].format(window=window), moved)
    if reasons:
        return DeliveryLine("late", texts["late"].format(reasons=reasons_text))
    if flag is not None and flag.kind == "customs_hold":
        return DeliveryLine("customs", texts["customs"])
    return DeliveryLine("unknown", texts["unknown"])


def journey(view: Mapping[str, Any], language: str) -> Journey:
    """Everything the customer is shown about a parcel (``view``: ``consumers.read_model.public_view``)."""
    language = supported(language)
    flag = flag_of(view, language)
    return Journey(
        status=view.get("status", ""),
        status_name=status_name(view.get("status", ""), language),
        steps=_steps(view, language),
        milestones=milestones(view, language),
        flag=flag,
        delivery=delivery_line(view, language, flag),
    )


@dataclass(frozen=True, slots=True)
class UpdateText:
    """The human text of one status change (e-mails, webhooks)."""

    message: str
    time: str
    place: str | None
    delivery: str


def update_text(update: Mapping[str, Any], language: str) -> UpdateText:
    """The same sentences as the page for one StatusUpdate-shaped record (status, sub_status,
    event_time_ms, utc_offset_minutes, location, estimated_delivery, on_time; ``movement`` when the
    caller knows it, as in the view)."""
    language = supported(language)
    offset = int(update.get("utc_offset_minutes") or 0)
    entry = {
        "status": update.get("status", ""),
        "sub_status": update.get("sub_status"),
        "code": update.get("code"),
        "event_time_ms": update["event_time_ms"],
        "utc_offset_minutes": offset,
        "location": update.get("location"),
        "carrier": update.get("carrier"),
        "reason": update.get("reason"),
    }
    view = {**update, "history": [entry]}
    message, names_place = step_message(
        status=entry["status"],
        sub_status=entry["sub_status"],
        code=entry["code"],
        language=language,
        location=entry["location"],
        carrier=entry["carrier"] if entry["sub_status"] != "handed_to_last_mile" else None,
        reason=entry["reason"],
        movement=update.get("movement"),
    )
    return UpdateText(
        message=message,
        time=local_time(entry["event_time_ms"], offset, language),
        place=None if names_place else place_name(entry["location"], language),
        delivery=delivery_line(view, language, flag_of(view, language)).text,
    )
