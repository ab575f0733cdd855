"""Every word a citizen or an agent sees or hears, in French, from this one table.

Presence notes shown on kiosk screens, the reason phrases of refusals, the text of the
waiting announcement: code elsewhere never writes French of its own, it asks here, so
that wording is reviewed (and one day translated) in one place.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

FR: Final[dict[str, str]] = {
    # Partner availability (PIDF notes, kiosk screen, SSE feed).
    "open": "Disponible",
    "busy": "Occupé",
    "busy_waiting": "Occupé - {people} en attente, environ {minutes} min",
    "busy_no_estimate": "Occupé - {people} en attente",
    "closed": "Fermé",
    "closed_opens": "Fermé - ouvre {when}",
    "closed_holiday": "Fermé ({detail}) - ouvre {when}",
    "closed_closure": "Fermé exceptionnellement - ouvre {when}",
    "offline": "Indisponible - aucun conseiller connecté",
    "appointment_only": "Sur rendez-vous uniquement",
    "by_appointment": "{when} sur rendez-vous",
    "person": "{n} personne",
    "people": "{n} personnes",
    # Station presence (busy-lamp fields of other agents).
    "station_idle": "Poste libre",
    "station_ringing": "Appel en cours de présentation",
    "station_busy": "En communication",
    "station_wrap_up": "Fin de dossier",
    "station_paused": "En pause",
    "station_offline": "Poste déconnecté",
    # Reason phrases carried in SIP Reason headers towards kiosks.
    "reason_unknown_service": "Service inconnu",
    "reason_not_offered": "Service non proposé dans ce point d'accueil",
    "reason_media_unavailable": "Service momentanément indisponible",
    "reason_encryption_required": "Communication chiffrée obligatoire",
    "reason_closed": "Service fermé",
    "reason_site_closed": "Point d'accueil fermé",
    "reason_appointment_only": "Service sur rendez-vous uniquement",
    "reason_queue_full": "File d'attente complète",
    "reason_queue_timeout": "Attente maximale dépassée",
    "reason_no_station": "Aucun conseiller connecté",
    "reason_all_busy": "Tous les conseillers sont occupés",
    "reason_no_answer": "Le conseiller ne répond pas",
    # What an H.323 station's screen shows of a caller (Q.931 Display, plain ASCII).
    "display_allocataire": "Allocataire {value}",
    # The looped announcement played to a waiting caller (prompts/fr/attente.wav).
    "prompt_waiting": (
        "Bonjour. Tous nos conseillers sont en ligne. Merci de patienter, "
        "vous serez mis en relation dès qu'un conseiller se libère."
    ),
}

WEEKDAYS: Final[tuple[str, ...]] = (
    "lundi",
    "mardi",
    "mercredi",
    "jeudi",
    "vendredi",
    "samedi",
    "dimanche",
)
MONTHS: Final[tuple[str, ...]] = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


def text(key: str, **values: object) -> str:
    """The French text for ``key`` with ``values`` filled in (KeyError for an unknown key)."""
    template = FR[key]
    return template.format(**values) if values else template


def people(n: int) -> str:
    """Count people in French: 1 personne, 3 personnes."""
    return text("person" if n == 1 else "people", n=n)


def clock_time(moment: datetime) -> str:
    """French clock time as printed on signs: 9h00, 14h30."""
    return f"{moment.hour}h{moment.minute:02d}"


def when(moment: datetime, now: datetime) -> str:
    """When something happens, relative to ``now`` (same zone): "jeudi à 9h00"."""
    day = moment.date()
    today = now.date()
    at = clock_time(moment)
    if day == today:
        return f"aujourd'hui à {at}"
    if day == today + timedelta(days=1):
        return f"demain à {at}"
    if day < today + timedelta(days=7):
        return f"{WEEKDAYS[moment.weekday()]} à {at}"
    return f"le {moment.day} {MONTHS[moment.month - 1]} à {at}"
