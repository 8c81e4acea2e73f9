"""Small fact tables for the facts, nearby and confident families: each fact with a plausible wrong answer.

    python -m j1core.data.builtin

A Fact is a question, a statement with a {} for the answer, the right answer and a wrong one that people
(and small models) give: the largest city for the capital, a near year, a near count, a lookalike symbol.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fact:
    table: str
    subject: str
    question: str
    statement: str  # with "{}" where the answer goes
    right: str
    wrong: str

    def say(self, answer: str) -> str:
        return self.statement.format(answer)


# country, capital, the city often mistaken for it
CAPITALS = (("Australia", "Canberra", "Sydney"), ("Canada", "Ottawa", "Toronto"), ("Brazil", "Brasilia", "Rio de "
            "Janeiro"), ("Turkey", "Ankara", "Istanbul"), ("Switzerland", "Bern", "Zurich"), ("India", "New Delhi",
            "Mumbai"), ("Nigeria", "Abuja", "Lagos"), ("Morocco", "Rabat", "Casablanca"), ("Vietnam", "Hanoi",
            "Ho Chi Minh City"), ("New Zealand", "Wellington", "Auckland"), ("Pakistan", "Islamabad", "Karachi"),
            ("Scotland", "Edinburgh", "Glasgow"), ("Germany", "Berlin", "Munich"), ("Italy", "Rome", "Milan"),
            ("Spain", "Madrid", "Barcelona"), ("Japan", "Tokyo", "Osaka"), ("China", "Beijing", "Shanghai"),
            ("Egypt", "Cairo", "Alexandria"), ("Kazakhstan", "Astana", "Almaty"), ("Tanzania", "Dodoma",
            "Dar es Salaam"), ("Ecuador", "Quito", "Guayaquil"), ("Russia", "Moscow", "Saint Petersburg"),
            ("Poland", "Warsaw", "Krakow"), ("Norway", "Oslo", "Bergen"), ("Chile", "Santiago", "Valparaiso"),
            ("Colombia", "Bogota", "Medellin"), ("Kenya", "Nairobi", "Mombasa"), ("France", "Paris", "Lyon"),
            ("Portugal", "Lisbon", "Porto"), ("Greece", "Athens", "Thessaloniki"), ("Ireland", "Dublin", "Cork"),
            ("Sweden", "Stockholm", "Gothenburg"), ("Argentina", "Buenos Aires", "Cordoba"), ("Peru", "Lima",
            "Cusco"), ("Austria", "Vienna", "Salzburg"), ("South Korea", "Seoul", "Busan"))
# element, symbol, a lookalike wrong symbol
SYMBOLS = (("sodium", "Na", "So"), ("potassium", "K", "P"), ("iron", "Fe", "Ir"), ("gold", "Au", "Go"),
           ("silver", "Ag", "Si"), ("lead", "Pb", "Le"), ("copper", "Cu", "Co"), ("tin", "Sn", "Ti"),
           ("mercury", "Hg", "Me"), ("helium", "He", "H"), ("carbon", "C", "Ca"), ("nitrogen", "N", "Ni"),
           ("calcium", "Ca", "C"), ("chlorine", "Cl", "Ch"), ("magnesium", "Mg", "Mn"), ("zinc", "Zn", "Z"),
           ("hydrogen", "H", "Hy"), ("sulfur", "S", "Su"), ("neon", "Ne", "N"), ("tungsten", "W", "Tu"),
           ("phosphorus", "P", "Ph"), ("oxygen", "O", "Ox"), ("aluminium", "Al", "Am"), ("silicon", "Si", "S"))
# event, year, a near wrong year
YEARS = (("the first crewed Moon landing", "1969", "1968"), ("the end of World War II", "1945", "1944"),
         ("the fall of the Berlin Wall", "1989", "1991"), ("the start of the French Revolution", "1789", "1799"),
         ("Columbus's first voyage to the Americas", "1492", "1498"), ("the sinking of the Titanic", "1912", "1914"),
         ("the start of World War I", "1914", "1918"), ("the US Declaration of Independence", "1776", "1774"),
         ("the sealing of the Magna Carta", "1215", "1225"), ("the Battle of Hastings", "1066", "1086"),
         ("the Wright brothers' first powered flight", "1903", "1905"),
         ("the release of the first iPhone", "2007", "2008"),
         ("the founding of the United Nations", "1945", "1948"), ("the Chernobyl disaster", "1986", "1984"),
         ("the first modern Olympic Games", "1896", "1900"), ("the launch of Sputnik 1", "1957", "1961"),
         ("the opening of the Channel Tunnel", "1994", "1992"), ("the euro coins' first use", "2002", "1999"))
# (question, statement, right, wrong)
COUNTS = (("How many legs does a spider have?", "A spider has {} legs.", "8", "6"),
          ("How many legs does an insect have?", "An insect has {} legs.", "6", "8"),
          ("How many days are there in a leap year?", "A leap year has {} days.", "366", "365"),
          ("How many players does a football (soccer) team have on the field?",
           "A football team has {} players on the field.", "11", "10"),
          ("How many planets are in the Solar System?", "The Solar System has {} planets.", "8", "9"),
          ("How many continents are there?", "There are {} continents.", "7", "6"),
          ("How many bones are in the adult human body?", "The adult human body has {} bones.", "206", "212"),
          ("How many hours are there in a week?", "A week has {} hours.", "168", "148"),
          ("How many minutes are there in a day?", "A day has {} minutes.", "1,440", "1,400"),
          ("How many keys does a standard piano have?", "A standard piano has {} keys.", "88", "76"),
          ("How many hearts does an octopus have?", "An octopus has {} hearts.", "3", "1"),
          ("How many chambers does the human heart have?", "The human heart has {} chambers.", "4", "2"),
          ("How many cards are in a standard deck without jokers?", "A standard deck has {} cards.", "52", "54"),
          ("How many degrees do the angles of a triangle add up to?",
           "The angles of a triangle add up to {} degrees.", "180", "360"),
          ("How many seconds are there in an hour?", "An hour has {} seconds.", "3,600", "360"),
          ("At what temperature in Celsius does water boil at sea level?",
           "At sea level water boils at {} degrees Celsius.", "100", "90"),
          ("At what temperature in Fahrenheit does water freeze?", "Water freezes at {} degrees Fahrenheit.", "32",
           "0"),
          ("How many sides does a hexagon have?", "A hexagon has {} sides.", "6", "8"),
          ("How many teeth does a full adult set have?", "A full adult set has {} teeth.", "32", "28"),
          ("How many strings does a standard guitar have?", "A standard guitar has {} strings.", "6", "5"))
# (question, statement, right, wrong)
NATURE = (("What is the largest mammal?", "The largest mammal is the {}.", "blue whale", "African elephant"),
          ("What is the fastest land animal?", "The fastest land animal is the {}.", "cheetah", "lion"),
          ("What is the largest planet in the Solar System?", "The largest planet is {}.", "Jupiter", "Saturn"),
          ("Which planet is closest to the Sun?", "The planet closest to the Sun is {}.", "Mercury", "Venus"),
          ("Which planet is called the Red Planet?", "The Red Planet is {}.", "Mars", "Jupiter"),
          ("What is the largest ocean?", "The largest ocean is the {} Ocean.", "Pacific", "Atlantic"),
          ("What is the highest mountain above sea level?", "The highest mountain is {}.", "Mount Everest", "K2"),
          ("Which gas do plants take in for photosynthesis?", "Plants take in {} for photosynthesis.",
           "carbon dioxide", "oxygen"),
          ("Which mammal can truly fly?", "The only mammal that can truly fly is the {}.", "bat", "flying squirrel"),
          ("What is a baby kangaroo called?", "A baby kangaroo is called a {}.", "joey", "cub"),
          ("What is a group of lions called?", "A group of lions is called a {}.", "pride", "pack"),
          ("What is the longest bone in the human body?", "The longest bone in the body is the {}.", "femur",
           "tibia"),
          ("What is the chemical formula of water?", "The chemical formula of water is {}.", "H2O", "HO2"),
          ("Who wrote Romeo and Juliet?", "Romeo and Juliet was written by {}.", "William Shakespeare",
           "Christopher Marlowe"),
          ("Who painted the Mona Lisa?", "The Mona Lisa was painted by {}.", "Leonardo da Vinci", "Michelangelo"),
          ("Who was the first person to walk on the Moon?", "The first person to walk on the Moon was {}.",
           "Neil Armstrong", "Buzz Aldrin"),
          ("What is the currency of Japan?", "The currency of Japan is the {}.", "yen", "yuan"),
          ("What language is mainly spoken in Brazil?", "The main language of Brazil is {}.", "Portuguese",
           "Spanish"),
          ("What is the hardest natural substance?", "The hardest natural substance is {}.", "diamond", "quartz"),
          ("What is the largest hot desert?", "The largest hot desert is the {}.", "Sahara", "Gobi"))

FACTS = tuple(
    [Fact("capitals", c, f"What is the capital of {c}?", f"The capital of {c} is {{}}.", r, w) for c, r, w in CAPITALS]
    + [Fact("symbols", e, f"What is the chemical symbol for {e}?", f"The chemical symbol for {e} is {{}}.", r, w)
       for e, r, w in SYMBOLS]
    + [Fact("years", e, f"In which year was {e}?", f"{e[0].upper() + e[1:]} was in {{}}.", r, w) for e, r, w in YEARS]
    + [Fact("counts", q, q, s, r, w) for q, s, r, w in COUNTS]
    + [Fact("nature", q, q, s, r, w) for q, s, r, w in NATURE])
REASONS = {
    "capitals": "The capital is where the national government sits, not always the biggest city.",
    "symbols": "Chemical symbols are one or two letters, often taken from the Latin name.",
    "years": "It is one of the dates history books come back to most often.",
    "counts": "It is a standard number you can check in any reference book.",
    "nature": "It is a common quiz question, and a common place to slip.",
}
