"""Capitalised words that are not names or places in clinical text: drugs, eponymous conditions,
section headings, clinical terms. NER spans made only of these words are dropped.

`ordinary_word` is wider: everyday English (Faker's English word list, spaCy's stop words) as well,
for the recognizers that accept a capitalised word as a name or place only when it is no such word."""
from __future__ import annotations

import functools


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


DRUGS = _words("""
acetaminophen tylenol ibuprofen advil motrin aspirin naproxen aleve metformin glucophage lisinopril zestril
atorvastatin lipitor simvastatin zocor rosuvastatin crestor pravastatin amlodipine norvasc losartan cozaar
valsartan metoprolol lopressor toprol carvedilol coreg atenolol propranolol hydrochlorothiazide hctz furosemide
lasix spironolactone warfarin coumadin apixaban eliquis rivaroxaban xarelto dabigatran pradaxa heparin
enoxaparin lovenox clopidogrel plavix insulin lantus humalog novolog glipizide glyburide sitagliptin januvia
empagliflozin jardiance dapagliflozin farxiga semaglutide ozempic liraglutide victoza levothyroxine synthroid
omeprazole prilosec pantoprazole protonix esomeprazole nexium famotidine pepcid ondansetron zofran prednisone
methylprednisolone solumedrol dexamethasone decadron hydrocortisone albuterol proair ventolin fluticasone
flovent advair symbicort tiotropium spiriva montelukast singulair cetirizine zyrtec loratadine claritin
diphenhydramine benadryl amoxicillin augmentin azithromycin zithromax doxycycline cephalexin keflex ceftriaxone
rocephin vancomycin piperacillin tazobactam zosyn ciprofloxacin cipro levofloxacin levaquin nitrofurantoin
macrobid metronidazole flagyl clindamycin bactrim sulfamethoxazole trimethoprim gabapentin neurontin pregabalin
lyrica sertraline zoloft fluoxetine prozac escitalopram lexapro citalopram celexa bupropion wellbutrin
venlafaxine effexor duloxetine cymbalta trazodone mirtazapine remeron quetiapine seroquel olanzapine zyprexa
risperidone risperdal aripiprazole abilify haloperidol haldol lorazepam ativan alprazolam xanax clonazepam
klonopin diazepam valium zolpidem ambien melatonin oxycodone percocet hydrocodone vicodin norco morphine
hydromorphone dilaudid fentanyl tramadol ultram codeine naloxone narcan buprenorphine suboxone methadone
lidocaine donepezil aricept memantine namenda levetiracetam keppra phenytoin dilantin lamotrigine lamictal
valproate depakote carbamazepine tegretol allopurinol colchicine tamsulosin flomax finasteride sildenafil viagra
tadalafil cialis digoxin amiodarone diltiazem cardizem verapamil hydralazine isosorbide nitroglycerin potassium
magnesium calcium vitamin folate thiamine cyanocobalamin ferrous iron epinephrine norepinephrine levophed
dopamine dobutamine vasopressin propofol midazolam versed ketamine rocuronium succinylcholine methotrexate
humira adalimumab infliximab remicade tacrolimus prograf cyclosporine mycophenolate cellcept keytruda
pembrolizumab tamoxifen letrozole herceptin entresto sacubitril trulicity dulaglutide mounjaro tirzepatide wegovy
brilinta ticagrelor repatha evolocumab dupixent enbrel stelara tradjenta invokana basaglar tresiba toujeo novolin
humulin levemir breo anoro trelegy incruse nucala fasenra xolair biktarvy genvoya descovy truvada paxlovid tamiflu
opdivo nivolumab revlimid imbruvica ibrance dexcom libre omnipod
""")
CONDITIONS = _words("""
parkinson parkinson's parkinsons alzheimer alzheimer's alzheimers crohn crohn's crohns hodgkin hodgkin's
hashimoto hashimoto's graves graves' addison addison's cushing cushing's bell bell's huntington huntington's
guillain barre barré raynaud raynaud's sjogren sjögren sjogren's tourette tourette's kawasaki wilson wilson's
down down's marfan asperger asperger's lyme hirschsprung meniere ménière's kaposi barrett barrett's babinski
murphy murphy's homan homans glasgow apgar braden morse wells gleason karnofsky ecog nyha killip rankin epworth
whipple nissen roux billroth foley swan ganz picc hickman medicare medicaid covid covid-19 sars-cov-2 hiv aids
tanner mallampati breslow ranson caprini alvarado centor
copd chf cad ckd esrd gerd dvt pe uti mri ct ekg ecg icu er ed pacu nicu picu ob gyn ent
""")
HEADINGS = _words("""
patient pt date time reason requesting education vin driver history hpi
pmh psh ros assessment plan impression diagnosis diagnoses dx ddx medications meds
allergies nkda vitals vital signs medication exam examination labs lab results imaging procedure procedures disposition
follow-up followup discharge admission summary note notes progress consult consultation chief complaint cc
subjective objective social family surgical medical past present illness review systems physical general heent
neck lungs heart abdomen extremities neuro skin psych instructions return precautions signed attending resident
nurse physician provider doctor dr md rn np pa mr mrs ms miss type stage grade class level room bed ward unit
floor day week month year left right bilateral normal negative positive stable improved unchanged mild moderate
severe acute chronic status post s/p denies reports presents presented states admits endorses the a an and or of
in on at to for with without no not he she they his her their him i we you it this that these those is was were
be been has had have will would should can could may might must shall please thank thanks yes sodium chloride
glucose creatinine hemoglobin hematocrit platelets wbc rbc bun alt ast inr ptt troponin bnp a1c hba1c tsh ldl
hdl cholesterol triglycerides albumin bilirubin lactate procalcitonin urinalysis culture
""")
# Nouns that end the names of scales, signs and diseases ("Glasgow Coma Scale", "Bell's Palsy"), written
# capitalised as proper nouns are.
TERMS = _words("""
scale scales index score criteria classification questionnaire inventory maneuver manoeuvre reflex sign test
fracture palsy phenomenon coma disease syndrome disorder tumor tumour lymphoma sarcoma carcinoma leukemia
anemia anaemia virus infection fever regimen protocol staging primary secondary tertiary ulcer valve catheter
line drain shunt pump monitor sensor implant stent graft lens block nerve artery vein muscle ligament tendon
chapter version phase cycle dose round appendix zone wing tablet capsule vial injection cohort module lesson
session tier track channel sector onset arm cohort visit route interstate exit
telehealth telemedicine teleconsult videoconference mychart
""")
MONTH_AND_DAY_WORDS = _words("""
january february march april june july august september october november december jan feb mar apr jun jul aug
sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday today yesterday tomorrow tonight
""")
# Letter runs of clinical terms written with digits ("COVID-19", "HbA1c", "BRCA1", "HLA-B27", "CD4"): a value
# after an identifier cue made of these and a few digits is no identifier.
CODE_WORDS = _words("""
covid sars cov hba brca cd hla dm hpv hsv ebv cmv ige igg igm iga ft vit apgar curb phq gad ecog nyha gcs nihss bi
rads tnm cin gleason her egfr alk ros kras braf jak il tnf icd cpt mmse moca chads vasc abcd spo fio pao paco
""")

# Words of everyday talk and clinical notes missing from the general lists below: interjections that open
# a sentence, relatives and roles, places of care, contact labels, specialties.
EVERYDAY = _words("""
okay ok sorry hello hi hey thanks thank please yes yeah no nope well alright sure fine great good listen look wait
honestly actually anyway sir madam ma'am everyone everybody someone somebody guys folks team bot user
husband wife son daughter mother father mom dad brother sister sibling siblings parent parents partner spouse
friend friends caregiver guardian niece nephew aunt uncle cousin grandson granddaughter grandmother grandfather
grandma grandpa neighbor neighbour boyfriend girlfriend family relative relatives child children baby infant
practitioner pharmacist therapist technician surgeon resident fellow intern staff clinician
clinic hospital home office ward floor unit rehab facility pharmacy lab laboratory surgery school church
shelter jail prison hospice emergency triage radiology cardiology oncology nephrology neurology pediatrics
dermatology urology orthopedics psychiatry gastroenterology pulmonology endocrinology obstetrics gynecology
mobile desk fax phone cell pager email e-mail website address street avenue road suite apt apartment box
baseline therapy assisted living dialysis cath recovery observation telemetry stepdown endoscopy
""")

# Words that make a spaCy ORG entity an organisation rather than a mislabelled person.
ORGANISATION_WORDS = _words("""
inc inc. incorporated corp corp. corporation llc llp ltd ltd. plc gmbh ag sa co co. company group bank university
college school hospital clinic center centre foundation institute associates partners software systems technologies
technology solutions services media labs holdings networks club society council agency department ministry church
and & of the for
""")

NOT_PHI = DRUGS | CONDITIONS | TERMS | HEADINGS | MONTH_AND_DAY_WORDS
# After a title ("Dr. Parkinson", "Mrs. Graves") or among names ("Monjeau, Barrett and Reed") an eponym
# is a surname; a heading, a month, an everyday word or a drug is not.
NOT_A_SURNAME = HEADINGS | MONTH_AND_DAY_WORDS | EVERYDAY | DRUGS


def only_common_words(value: str, vocabulary: frozenset[str] = NOT_PHI) -> bool:
    """True when every word of a span is clinical vocabulary (so it names no one and nowhere)."""
    words = [w.strip(".,:;()'\"").lower() for w in value.split()]
    words = [w for w in words if w]
    return bool(words) and all(w in vocabulary or w.isdigit() for w in words)


@functools.cache
def everyday_words() -> frozenset[str]:
    """Everyday English, lower-cased: Faker's English word list, spaCy's stop words, `EVERYDAY`."""
    from faker.providers.lorem.en_US import Provider
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(w.lower() for w in Provider.word_list) | frozenset(STOP_WORDS) | EVERYDAY


_INFLECTIONS = ("s", "es", "ed", "d", "ing", "ly", "er", "ers")


@functools.lru_cache(maxsize=1 << 16)
def everyday_word(word: str) -> bool:
    """True for an everyday English word ("Called", "Sorry", "Mobile"), inflected forms included."""
    lower = word.strip(".,:;()'\"\u2019").lower()
    words = everyday_words()
    return lower in words or any(lower.endswith(ending) and lower[:-len(ending)] in words
                                 for ending in _INFLECTIONS if len(lower) > len(ending) + 2)


def ordinary_word(word: str) -> bool:
    """An everyday word or clinical vocabulary ("Sorry", "Metformin", "Parkinson")."""
    return everyday_word(word) or word.strip(".,:;()'\"\u2019").lower() in NOT_PHI
