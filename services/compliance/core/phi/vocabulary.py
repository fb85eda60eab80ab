"""Capitalised words that are not names or places in clinical text: drugs, eponymous conditions,
section headings, clinical terms. NER spans made only of these words are dropped."""
from __future__ import annotations


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
pembrolizumab tamoxifen letrozole herceptin
""")
CONDITIONS = _words("""
parkinson parkinson's parkinsons alzheimer alzheimer's alzheimers crohn crohn's crohns hodgkin hodgkin's
hashimoto hashimoto's graves graves' addison addison's cushing cushing's bell bell's huntington huntington's
guillain barre barré raynaud raynaud's sjogren sjögren sjogren's tourette tourette's kawasaki wilson wilson's
down down's marfan asperger asperger's lyme hirschsprung meniere ménière's kaposi barrett barrett's babinski
murphy murphy's homan homans glasgow apgar braden morse wells gleason karnofsky ecog nyha killip rankin epworth
whipple nissen roux billroth foley swan ganz picc hickman medicare medicaid covid covid-19 sars-cov-2 hiv aids
copd chf cad ckd esrd gerd dvt pe uti mri ct ekg ecg icu er ed pacu nicu picu ob gyn ent
""")
HEADINGS = _words("""
patient pt date time reason requesting education vin driver history hpi
pmh psh ros assessment plan impression diagnosis diagnoses dx ddx medications meds
allergies nkda vitals vital signs exam examination labs lab results imaging procedure procedures disposition
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
MONTH_AND_DAY_WORDS = _words("""
january february march april june july august september october november december jan feb mar apr jun jul aug
sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday today yesterday tomorrow tonight
""")

NOT_PHI = DRUGS | CONDITIONS | HEADINGS | MONTH_AND_DAY_WORDS


def only_common_words(value: str) -> bool:
    """True when every word of a span is clinical vocabulary (so it names no one and nowhere)."""
    words = [w.strip(".,:;()'\"").lower() for w in value.split()]
    words = [w for w in words if w]
    return bool(words) and all(w in NOT_PHI or w.isdigit() for w in words)
