"""Safety v13 abuse cases: current danger without a blow, coercive control,
and threats to the children, pets, home or the abuser's own life as coercion.

Each case is written for this file (not copied from any review set); the
decoys are ordinary sentences that share the words and must stay 0 0.
"""

from __future__ import annotations

import pytest

from .test_safety import _levels

# (text, crisis_severity, abuse_severity)
DISCLOSURES = [
    # a second round, after a fresh review: strangulation told by the hands,
    # a bruising grip, a weapon kept with a threat to use it, things smashed
    # while the user hides, a threat of worse, shut in, touching as a habit
    ("my boyfriend had his hands around my throat again last night", 0, 3),
    ("he pinned me to the wall with his hands on my neck", 0, 3),
    # hiding or turning up long ago is not danger now: past abuse stays 1
    ("my dad used to hit me when i was little, i'd spend hours hiding in my room", 0, 1),
    ("my ex hit me years ago, he once turned up at my work drunk", 0, 1),
    ("my husband grabs my wrists so hard they bruise whenever we fight", 0, 2),
    ("my brother keeps a bat under his bed and says he'll use it on me if i snitch", 0, 3),
    ("my dad's smashing plates again and i'm hiding in my wardrobe", 0, 3),
    ("he slapped me yesterday and said next time it will be worse", 0, 3),
    ("when i was small my stepmum locked me in the cellar for hours", 0, 1),
    ("my uncle used to touch me when i was nine", 0, 1),
    ("got sexually assaulted at a club on friday and i feel disgusting", 0, 2),
    ("my boyfriend throws stuff at me when he's drunk", 0, 2),
    # threats to the home, the children, the pets, or a murder-suicide
    ("My husband says if I leave he'll set the house on fire with me in it.", 0, 3),
    ("She told me she'll drown the puppy if I ever break up with her.", 0, 3),
    ("If I go to the police hell take the kids away and I'll never see them again.", 0, 3),
    ("My boyfriend keeps saying hell kill himself and me too if I leave.", 0, 3),
    ("He threatened to drive us into a tree with the kids in the back.", 0, 3),
    # coercive control
    ("My wife has taken my entire salary every month since we moved in together.", 0, 2),
    ("My boyfriend changed all the passwords on our bank accounts so I can't see where the money goes.", 0, 2),
    ("My husband tells me I can't see my family anymore.", 0, 2),
    ("She reads through my messages every single night and deletes people.", 0, 2),
    ("My girlfriend put a tracking app on my phone without telling me.", 0, 2),
    ("My husband keeps my papers locked up so I can't leave.", 0, 2),
    ("My partner makes me share my location and send a photo whenever I go out.", 0, 2),
    ("My boyfriend hides my keys so I can't leave when he's at work.", 0, 2),
    # current danger without a blow
    ("My ex is kicking at the back door and screaming that he'll get in, I'm terrified.", 0, 3),
    ("He keeps showing up outside my apartment even though there's a restraining order.", 0, 3),
    ("My ex has been following me to the gym every morning and I'm scared.", 0, 3),
    ("My husband got drunk and left a knife out on the counter, I don't know what to do.", 0, 3),
    ("My boyfriend texted me that I'll pay for it if I go to my sister's tonight.", 0, 3),
    ("My girlfriend warned me I'll be sorry when she gets back tonight.", 0, 3),
    ("My girlfriend is standing outside my window and won't leave, I've locked everything.", 0, 3),
    ("She locked me in the basement and has the key with her, I'm still down here.", 0, 3),
    ("My girlfriend broke my phone so I couldn't text my brother for help.", 0, 2),
    ("My husband swore he'll destroy all my things if I go to my parents.", 0, 3),
]

DECOYS = [
    # a review of the merged change: an embrace, a rescue, children at a door,
    # an errand, a rota, a shoulder corrected, the neighbours, a burglar
    "he put his arm around my neck and kissed my cheek",
    "he grabbed my arm hard to stop me falling on the ice",
    "the kids are banging on the bathroom door because they're scared of the dark",
    "the neighbours were banging on the door, i was scared it was the police",
    "my dad followed me to school again today to drop off my lunch",
    "she says i can't work on sundays anymore, the shop is closed",
    "my coach used to touch me on the shoulder to correct my form",
    "he keeps a bat by the door and says he'll use it if we get burgled",
    "seeing my mum cry hurts me every time",
    "my best friend got raped last year and i don't know how to help her",
    "my little brother grabbed my arm to stop me falling off the wall",
    "my cat keeps trying to touch me with her paw at night",
    "the kids are smashing things in minecraft again",
    "my nan keeps a knife in her handbag and says she'll use it if she needs to cut an apple",
    "we were hiding in the bathroom during hide and seek",
    "he was breaking things off with her when i walked in",
    "out of fear she would try to touch me i stayed in my room",
    "My mom took my phone because I failed my math test.",
    "My mom has my location 24/7 and freaks out if it's off lol.",
    "My dad goes through my phone every night since I got caught sneaking out.",
    "The landlord changed the locks and kept my deposit.",
    "My toddler hides my keys every morning so I can't leave on time.",
    "My mom says I can't see my friends until my grades improve.",
    "She took my passport photo at the post office.",
    "My dad changed the password on my bank account after it got hacked.",
    "My husband takes my paycheck to the bank on Fridays because I work late.",
    "The delivery guy was banging on the door for ten minutes.",
    "My dad is outside my door telling me dinner is ready.",
    "My dad has his rifle out on the table to clean it before hunting season.",
    "You'll regret it if you don't try the cake.",
    "My friend said I'll regret it if I skip the concert.",
    "My mom said I'd be sorry if I didn't wear a coat.",
    "My cat follows me to the bathroom every morning.",
    "She showed up at my house with a cake for my birthday.",
    "My girlfriend has my location and I have hers, it's handy.",
    "I'm hiding in my room from my mum because I broke her vase.",
    "My boyfriend took my phone to take a picture of the sunset.",
    "My girlfriend took my phone until I finish my essay, she's keeping me off social media.",
    "My husband has a knife out chopping onions and he's mad at me for coming home late.",
    "My little brother says he'll destroy everything in minecraft lol",
]


@pytest.mark.parametrize(("text", "crisis", "abuse"), DISCLOSURES)
def test_v13_abuse_disclosure(text: str, crisis: int, abuse: int) -> None:
    assert _levels(text) == (crisis, abuse), text


@pytest.mark.parametrize("text", DECOYS)
def test_v13_abuse_decoy_stays_clear(text: str) -> None:
    assert _levels(text) == (0, 0), text
