"""What customers read, in Danish, Swedish, Norwegian (Bokmål) and English.

Each locale is one frozen ``Messages``: plain text, never HTML, so that the
pages and emails escape every text once, after the company name or the
customer's name is filled in. Placeholders are ``str.format`` fields
(``{company}``, ``{name}``, ``{score}``); a value put into a placeholder is not
itself parsed as a format string, so a company called ``{0}`` stays ``{0}``.

The Danish and Swedish NPS questions follow the wording of the Danish and
Swedish NPS practice ("hvor sandsynligt er det, at du vil anbefale ... til en
ven eller kollega?", "hur troligt är det att du skulle rekommendera ... till en
vän eller kollega?"); the rest is written for each language, not translated
word for word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from shared.nps import Category, classify

LocaleCode = Literal["da", "sv", "no", "en"]
LOCALES: Final[tuple[LocaleCode, ...]] = ("da", "sv", "no", "en")
FALLBACK_LOCALE: Final[LocaleCode] = "en"

# Bokmål and Nynorsk readers get the Bokmål texts: both read it, and it is what most
# Norwegian customers write.
_ALIASES: Final[Mapping[str, LocaleCode]] = MappingProxyType(
    {"da": "da", "sv": "sv", "no": "no", "nb": "no", "nn": "no", "en": "en"}
)

HEARD_FROM_KEYS: Final[tuple[str, ...]] = (
    "recommendation",
    "google",
    "social_media",
    "ads",
    "local_paper",
    "store",
    "other",
)
"""The answers to "How did you first hear about us?" that an installation may offer."""


@dataclass(frozen=True)
class Messages:
    """Every customer-facing text of one locale.

    Fields ending in a question mark, and subjects, take ``{company}``; the greeting
    takes ``{name}``; ``thanks_for_score`` takes ``{score}``; the others say what they take.
    """

    locale: LocaleCode
    html_lang: str
    """The BCP 47 tag for ``lang=""``: "nb" for Norwegian, since the texts are Bokmål."""

    # The survey question and its scale.
    nps_question: str
    enps_question: str
    scale_low: str
    scale_high: str

    # The invitation email.
    email_subject_nps: str
    email_subject_enps: str
    greeting_named: str
    greeting_anonymous: str
    email_intro_nps: str
    email_intro_enps: str
    click_a_number: str
    sign_off: str
    unsubscribe_prompt: str
    unsubscribe_link: str

    # The review request (to promoters, or to everyone the review policy asks).
    review_subject: str
    review_thanks_promoter: str
    """Takes ``{company}`` and ``{score}``."""
    review_thanks: str
    """Thanks without praise, for a customer the policy asks whatever their score."""
    review_ask: str
    review_on_site: str
    """A review link's label; takes ``{site}`` (Google, Facebook, Trustpilot)."""

    # The follow-up email (to a detractor or a passive, where a rule asks for one).
    follow_up_subject: str
    follow_up_sorry: str
    follow_up_contact: str
    """Said only when a case was opened, so someone will indeed get in touch."""
    follow_up_reply: str

    # The survey page.
    survey_title: str
    thanks_for_score: str
    change_score: str
    answer_updated: str
    enps_anonymous: str
    reason_question: str
    improve_question_detractor: str
    improve_question_passive: str
    improve_question_promoter: str
    optional: str
    heard_from_question: str
    # Left out of the hash: a read-only mapping is not hashable, and the texts around it
    # identify the locale anyway.
    heard_from_labels: Mapping[str, str] = field(hash=False)
    submit: str

    # The page after the answers are in.
    thanks_title: str
    thanks_body: str
    thanks_close: str

    # A survey link that cannot be used.
    link_expired_title: str
    link_expired_explanation: str
    link_expired_next_step: str
    link_invalid_title: str
    link_invalid_explanation: str
    link_invalid_next_step: str

    # Unsubscribing.
    unsubscribe_title: str
    unsubscribe_question: str
    unsubscribe_button: str
    unsubscribe_keep: str
    unsubscribed_title: str
    unsubscribed_body: str

    def question(self, survey_kind: str, company: str) -> str:
        """The 0-10 question of an NPS ("nps") or employee NPS ("enps") survey."""
        if survey_kind == "enps":
            return self.enps_question.format(company=company)
        if survey_kind == "nps":
            return self.nps_question.format(company=company)
        raise ValueError(f"a survey kind is 'nps' or 'enps', not {survey_kind!r}")

    def improve_question(self, score: int) -> str:
        """The second follow-up question, which depends on where the score puts the customer.

        A passive is asked what would lift them to a 9 or 10: that one thing is what
        turns a passive into a promoter, which a general "what could we do better?"
        rarely surfaces.
        """
        category = classify(score)
        if category is Category.PROMOTER:
            return self.improve_question_promoter
        if category is Category.PASSIVE:
            return self.improve_question_passive
        return self.improve_question_detractor

    def greeting(self, name: str | None) -> str:
        """ "Hi Lars," or, without a name, a greeting that does not need one."""
        name = (name or "").strip()
        return self.greeting_named.format(name=name) if name else self.greeting_anonymous

    def heard_from_label(self, key: str) -> str:
        """The label of one "How did you first hear about us?" answer."""
        try:
            return self.heard_from_labels[key]
        except KeyError:
            raise ValueError(
                f"{key!r} is not a heard-from answer; the answers are {', '.join(HEARD_FROM_KEYS)}"
            ) from None


def _labels(**labels: str) -> Mapping[str, str]:
    if tuple(labels) != HEARD_FROM_KEYS:
        raise ValueError(f"heard-from labels must be given for {HEARD_FROM_KEYS}, in order")
    return MappingProxyType(labels)


DANISH: Final = Messages(
    locale="da",
    html_lang="da",
    nps_question="Hvor sandsynligt er det, at du vil anbefale {company} til en ven eller kollega?",
    enps_question=(
        "Hvor sandsynligt er det, at du vil anbefale {company} som arbejdsplads "
        "til en ven eller kollega?"
    ),
    scale_low="Slet ikke sandsynligt",
    scale_high="Yderst sandsynligt",
    email_subject_nps="Et hurtigt spørgsmål fra {company}",
    email_subject_enps="Et anonymt spørgsmål om din arbejdsplads",
    greeting_named="Hej {name}",
    greeting_anonymous="Hej",
    email_intro_nps="Tak, fordi du valgte {company}. Vi vil rigtig gerne høre, hvordan det gik.",
    email_intro_enps="Vi vil gerne vide, hvordan du har det med at arbejde hos {company}.",
    click_a_number="Klik på et tal for at svare – det tager ét sekund.",
    sign_off="På forhånd tak for hjælpen",
    unsubscribe_prompt="Vil du ikke have flere undersøgelser fra {company}?",
    unsubscribe_link="Afmeld her",
    review_subject="Vil du fortælle andre om {company}?",
    review_thanks_promoter=(
        "Tak, fordi du gav {company} {score} ud af 10. Det betyder meget for os."
    ),
    review_thanks="Tak, fordi du tog dig tid til at svare {company}.",
    review_ask=(
        "Vil du dele din oplevelse dér, hvor andre søger råd, inden de vælger? "
        "Det tager kun et minut."
    ),
    review_on_site="Anmeld os på {site}",
    follow_up_subject="Tak for dit svar til {company}",
    follow_up_sorry="Vi er kede af, at vi ikke levede op til dine forventninger.",
    follow_up_contact="En af vores medarbejdere kontakter dig snarest.",
    follow_up_reply="Svar gerne direkte på denne e-mail – vi læser alle svar.",
    survey_title="Din feedback til {company}",
    thanks_for_score="Tak – du gav os {score} ud af 10",
    change_score="Har du fortrudt? Vælg bare et andet tal.",
    answer_updated="Tak, dit svar er opdateret.",
    enps_anonymous=(
        "Dine svar er anonyme: vi gemmer hverken dit navn eller din e-mailadresse sammen med dem."
    ),
    reason_question="Hvad er den primære årsag til din score?",
    improve_question_detractor="Hvad kunne vi gøre bedre?",
    improve_question_passive="Hvad skulle der til, for at du ville give os 9 eller 10?",
    improve_question_promoter="Er der noget, vi kunne gøre endnu bedre?",
    optional="valgfrit",
    heard_from_question="Hvordan hørte du første gang om os?",
    heard_from_labels=_labels(
        recommendation="En ven eller kollega anbefalede jer",
        google="Jeg søgte på Google",
        social_media="Sociale medier",
        ads="En annonce",
        local_paper="Lokalavisen",
        store="I en af jeres butikker",
        other="Andet",
    ),
    submit="Send svar",
    thanks_title="Tusind tak!",
    thanks_body="Dine svar går direkte til dem hos {company}, der kan gøre noget ved dem.",
    thanks_close="Du kan roligt lukke siden nu.",
    link_expired_title="Linket er udløbet",
    link_expired_explanation=(
        "Linkene i vores undersøgelser virker kun i en periode, og dette link er for gammelt. "
        "Har du allerede svaret, har vi gemt dit svar."
    ),
    link_expired_next_step=(
        "Du behøver ikke gøre mere. Vil du alligevel fortælle os noget, er du velkommen til at "
        "kontakte os direkte."
    ),
    link_invalid_title="Linket virker ikke",
    link_invalid_explanation=(
        "Linket er ufuldstændigt eller blevet ændret. Det sker tit, når et langt link bliver "
        "kopieret eller delt over to linjer i en e-mail."
    ),
    link_invalid_next_step=(
        "Gå tilbage til e-mailen, og klik direkte på linket eller på et af tallene. Hjælper det "
        "ikke, er du velkommen til at kontakte os direkte."
    ),
    unsubscribe_title="Afmeld undersøgelser",
    unsubscribe_question="Vil du afmelde dig, så du ikke får flere undersøgelser fra {company}?",
    unsubscribe_button="Ja, afmeld mig",
    unsubscribe_keep="Vil du fortsat have dem, kan du bare lukke siden.",
    unsubscribed_title="Du er afmeldt",
    unsubscribed_body="Du får ikke flere undersøgelser fra {company}.",
)

SWEDISH: Final = Messages(
    locale="sv",
    html_lang="sv",
    nps_question=(
        "Hur troligt är det att du skulle rekommendera {company} till en vän eller kollega?"
    ),
    enps_question=(
        "Hur troligt är det att du skulle rekommendera {company} som arbetsplats "
        "till en vän eller kollega?"
    ),
    scale_low="Inte alls troligt",
    scale_high="Mycket troligt",
    email_subject_nps="En snabb fråga från {company}",
    email_subject_enps="En anonym fråga om din arbetsplats",
    greeting_named="Hej {name}!",
    greeting_anonymous="Hej!",
    email_intro_nps="Tack för att du valde {company}. Vi vill gärna höra hur det gick.",
    email_intro_enps="Vi vill gärna veta hur du trivs med att arbeta på {company}.",
    click_a_number="Klicka på en siffra för att svara – det tar en sekund.",
    sign_off="Tack för hjälpen!",
    unsubscribe_prompt="Vill du inte få fler undersökningar från {company}?",
    unsubscribe_link="Avregistrera dig här",
    review_subject="Vill du berätta för andra om {company}?",
    review_thanks_promoter=(
        "Tack för att du gav {company} {score} av 10. Det betyder mycket för oss."
    ),
    review_thanks="Tack för att du tog dig tid att svara {company}.",
    review_ask=(
        "Vill du dela din upplevelse där andra söker råd innan de väljer? Det tar bara en minut."
    ),
    review_on_site="Recensera oss på {site}",
    follow_up_subject="Tack för ditt svar till {company}",
    follow_up_sorry="Vi beklagar att vi inte levde upp till dina förväntningar.",
    follow_up_contact="En av våra medarbetare kontaktar dig så snart som möjligt.",
    follow_up_reply="Svara gärna direkt på det här mejlet – vi läser alla svar.",
    survey_title="Din återkoppling till {company}",
    thanks_for_score="Tack – du gav oss {score} av 10",
    change_score="Ångrat dig? Välj bara en annan siffra.",
    answer_updated="Tack, ditt svar har uppdaterats.",
    enps_anonymous=(
        "Dina svar är anonyma: vi sparar varken ditt namn eller din e-postadress tillsammans "
        "med dem."
    ),
    reason_question="Vad är den främsta anledningen till ditt betyg?",
    improve_question_detractor="Vad kan vi göra bättre?",
    improve_question_passive="Vad skulle krävas för att du skulle ge oss 9 eller 10?",
    improve_question_promoter="Finns det något vi kan göra ännu bättre?",
    optional="frivilligt",
    heard_from_question="Hur hörde du talas om oss första gången?",
    heard_from_labels=_labels(
        recommendation="En vän eller kollega rekommenderade er",
        google="Jag sökte på Google",
        social_media="Sociala medier",
        ads="En annons",
        local_paper="Lokaltidningen",
        store="I en av era butiker",
        other="Annat",
    ),
    submit="Skicka svar",
    thanks_title="Stort tack!",
    thanks_body="Dina svar går direkt till dem på {company} som kan göra något åt dem.",
    thanks_close="Du kan stänga sidan nu.",
    link_expired_title="Länken har slutat gälla",
    link_expired_explanation=(
        "Länkarna i våra undersökningar gäller bara en viss tid, och den här är för gammal. "
        "Om du redan har svarat har vi sparat ditt svar."
    ),
    link_expired_next_step=(
        "Du behöver inte göra något mer. Vill du ändå berätta något för oss är du välkommen att "
        "kontakta oss direkt."
    ),
    link_invalid_title="Länken fungerar inte",
    link_invalid_explanation=(
        "Länken är ofullständig eller har ändrats. Det händer ofta när en lång länk kopieras "
        "eller delas upp på två rader i ett mejl."
    ),
    link_invalid_next_step=(
        "Gå tillbaka till mejlet och klicka direkt på länken eller på en av siffrorna. Hjälper "
        "inte det är du välkommen att kontakta oss direkt."
    ),
    unsubscribe_title="Avregistrera dig från undersökningar",
    unsubscribe_question="Vill du sluta få undersökningar från {company}?",
    unsubscribe_button="Ja, avregistrera mig",
    unsubscribe_keep="Vill du fortsätta få dem kan du bara stänga sidan.",
    unsubscribed_title="Du är avregistrerad",
    unsubscribed_body="Du kommer inte att få fler undersökningar från {company}.",
)

NORWEGIAN: Final = Messages(
    locale="no",
    html_lang="nb",
    nps_question="Hvor sannsynlig er det at du vil anbefale {company} til en venn eller kollega?",
    enps_question=(
        "Hvor sannsynlig er det at du vil anbefale {company} som arbeidsplass "
        "til en venn eller kollega?"
    ),
    scale_low="Slett ikke sannsynlig",
    scale_high="Svært sannsynlig",
    email_subject_nps="Et raskt spørsmål fra {company}",
    email_subject_enps="Et anonymt spørsmål om arbeidsplassen din",
    greeting_named="Hei {name}",
    greeting_anonymous="Hei",
    email_intro_nps="Takk for at du valgte {company}. Vi vil gjerne høre hvordan det gikk.",
    email_intro_enps="Vi vil gjerne vite hvordan du trives med å jobbe i {company}.",
    click_a_number="Klikk på et tall for å svare – det tar ett sekund.",
    sign_off="Takk for hjelpen!",
    unsubscribe_prompt="Vil du ikke få flere undersøkelser fra {company}?",
    unsubscribe_link="Meld deg av her",
    review_subject="Vil du fortelle andre om {company}?",
    review_thanks_promoter="Takk for at du ga {company} {score} av 10. Det betyr mye for oss.",
    review_thanks="Takk for at du tok deg tid til å svare {company}.",
    review_ask=(
        "Vil du dele opplevelsen din der andre ser etter råd før de velger? Det tar bare et minutt."
    ),
    review_on_site="Gi oss en anmeldelse på {site}",
    follow_up_subject="Takk for svaret ditt til {company}",
    follow_up_sorry="Vi beklager at vi ikke levde opp til forventningene dine.",
    follow_up_contact="En av våre medarbeidere tar kontakt med deg så snart som mulig.",
    follow_up_reply="Svar gjerne direkte på denne e-posten – vi leser alle svar.",
    survey_title="Din tilbakemelding til {company}",
    thanks_for_score="Takk – du ga oss {score} av 10",
    change_score="Ombestemt deg? Bare velg et annet tall.",
    answer_updated="Takk, svaret ditt er oppdatert.",
    enps_anonymous=(
        "Svarene dine er anonyme: vi lagrer verken navnet ditt eller e-postadressen din sammen "
        "med dem."
    ),
    reason_question="Hva er den viktigste grunnen til svaret ditt?",
    improve_question_detractor="Hva kunne vi gjort bedre?",
    improve_question_passive="Hva skal til for at du gir oss 9 eller 10?",
    improve_question_promoter="Er det noe vi kunne gjort enda bedre?",
    optional="valgfritt",
    heard_from_question="Hvordan hørte du om oss første gang?",
    heard_from_labels=_labels(
        recommendation="En venn eller kollega anbefalte dere",
        google="Jeg søkte på Google",
        social_media="Sosiale medier",
        ads="En annonse",
        local_paper="Lokalavisen",
        store="I en av butikkene deres",
        other="Annet",
    ),
    submit="Send svar",
    thanks_title="Tusen takk!",
    thanks_body="Svarene dine går rett til dem i {company} som kan gjøre noe med dem.",
    thanks_close="Du kan trygt lukke siden nå.",
    link_expired_title="Lenken er utløpt",
    link_expired_explanation=(
        "Lenkene i undersøkelsene våre virker bare en viss tid, og denne er for gammel. "
        "Har du allerede svart, har vi lagret svaret ditt."
    ),
    link_expired_next_step=(
        "Du trenger ikke gjøre noe mer. Vil du likevel fortelle oss noe, er du velkommen til å "
        "kontakte oss direkte."
    ),
    link_invalid_title="Lenken virker ikke",
    link_invalid_explanation=(
        "Lenken er ufullstendig eller har blitt endret. Det skjer ofte når en lang lenke blir "
        "kopiert eller delt over to linjer i en e-post."
    ),
    link_invalid_next_step=(
        "Gå tilbake til e-posten og klikk direkte på lenken eller på et av tallene. Hjelper ikke "
        "det, er du velkommen til å kontakte oss direkte."
    ),
    unsubscribe_title="Meld deg av undersøkelser",
    unsubscribe_question="Vil du slutte å få undersøkelser fra {company}?",
    unsubscribe_button="Ja, meld meg av",
    unsubscribe_keep="Vil du fortsatt få dem, kan du bare lukke siden.",
    unsubscribed_title="Du er meldt av",
    unsubscribed_body="Du får ikke flere undersøkelser fra {company}.",
)

ENGLISH: Final = Messages(
    locale="en",
    html_lang="en",
    nps_question="How likely is it that you would recommend {company} to a friend or colleague?",
    enps_question=(
        "How likely is it that you would recommend {company} to a friend or colleague "
        "as a place to work?"
    ),
    scale_low="Not at all likely",
    scale_high="Extremely likely",
    email_subject_nps="A quick question from {company}",
    email_subject_enps="One anonymous question about your workplace",
    greeting_named="Hi {name},",
    greeting_anonymous="Hello,",
    email_intro_nps="Thank you for choosing {company}. We would love to hear how it went.",
    email_intro_enps="We would like to know how you find working at {company}.",
    click_a_number="Click a number to answer – it takes one second.",
    sign_off="Thank you for your help,",
    unsubscribe_prompt="Rather not get surveys from {company}?",
    unsubscribe_link="Unsubscribe here",
    review_subject="Would you tell others about {company}?",
    review_thanks_promoter=(
        "Thank you for giving {company} {score} out of 10. It means a lot to us."
    ),
    review_thanks="Thank you for taking the time to answer {company}.",
    review_ask=(
        "Would you share your experience where others look for advice before they choose? "
        "It only takes a minute."
    ),
    review_on_site="Review us on {site}",
    follow_up_subject="Thank you for your answer to {company}",
    follow_up_sorry="We are sorry we did not live up to your expectations.",
    follow_up_contact="Someone from our team will contact you shortly.",
    follow_up_reply="Feel free to reply to this email – we read every answer.",
    survey_title="Your feedback to {company}",
    thanks_for_score="Thank you – you gave us {score} out of 10",
    change_score="Changed your mind? Just pick another number.",
    answer_updated="Thank you, your answer has been updated.",
    enps_anonymous=(
        "Your answers are anonymous: we store neither your name nor your email address with them."
    ),
    reason_question="What is the main reason for your score?",
    improve_question_detractor="What could we do better?",
    improve_question_passive="What is the one thing that would make you give us a 9 or 10?",
    improve_question_promoter="Is there anything we could do even better?",
    optional="optional",
    heard_from_question="How did you first hear about us?",
    heard_from_labels=_labels(
        recommendation="A friend or colleague recommended you",
        google="I searched on Google",
        social_media="Social media",
        ads="An advertisement",
        local_paper="The local newspaper",
        store="In one of your shops",
        other="Somewhere else",
    ),
    submit="Send answer",
    thanks_title="Thank you!",
    thanks_body="Your answers go straight to the people at {company} who can act on them.",
    thanks_close="You can close this page now.",
    link_expired_title="This link has expired",
    link_expired_explanation=(
        "The links in our surveys only work for a while, and this one is too old. "
        "If you already answered, your answer is saved."
    ),
    link_expired_next_step=(
        "There is nothing more you need to do. If you would still like to tell us something, "
        "you are welcome to contact us directly."
    ),
    link_invalid_title="This link does not work",
    link_invalid_explanation=(
        "The link is incomplete or has been changed. That often happens when a long link is "
        "copied, or split over two lines in an email."
    ),
    link_invalid_next_step=(
        "Go back to the email and click the link or one of the numbers directly. If that does "
        "not help, you are welcome to contact us directly."
    ),
    unsubscribe_title="Unsubscribe from surveys",
    unsubscribe_question="Do you want to stop getting surveys from {company}?",
    unsubscribe_button="Yes, unsubscribe me",
    unsubscribe_keep="If you would like to keep getting them, just close this page.",
    unsubscribed_title="You are unsubscribed",
    unsubscribed_body="You will not get any more surveys from {company}.",
)

_MESSAGES: Final[Mapping[LocaleCode, Messages]] = MappingProxyType(
    {"da": DANISH, "sv": SWEDISH, "no": NORWEGIAN, "en": ENGLISH}
)


def normalise_locale(locale: str | None) -> LocaleCode:
    """The supported locale a tag such as "da-DK", "sv_SE", "nb" or "EN-gb" reads as.

    Only the language counts, not the region ("sv-FI" is Swedish); Bokmål ("nb")
    and Nynorsk ("nn") read as "no". Anything else, or nothing, is English.
    """
    if not locale:
        return FALLBACK_LOCALE
    language = locale.strip().replace("_", "-").split("-", 1)[0].lower()
    return _ALIASES.get(language, FALLBACK_LOCALE)


def messages_for(locale: str | None) -> Messages:
    """The texts for a locale tag, falling back to English (see ``normalise_locale``)."""
    return _MESSAGES[normalise_locale(locale)]
