// The auto mode's prompt classifier: should Qwen3 think about this prompt? A cue scorer over the latest user message
// that works in the languages Qwen3 is most used in (English, Chinese, Spanish, French, German, Japanese, Russian,
// Portuguese, Korean, Arabic, Hindi, Italian): language-independent shapes (code, formulas, numbers in a question)
// plus, per language, the words that ask for math, proofs, code, debugging, logic, planning or analysis (think) and
// for greetings, thanks, lookups, translation, rewriting or short creative pieces (don't think). A few regular
// expressions per prompt: well under 1 ms, a few kB in the bundle (bench/thinking-mode-eval.ts measures both, and the
// accuracy per language on test/fixtures/thinking-prompts.json).

type Language = 'en' | 'zh' | 'es' | 'fr' | 'de' | 'ja' | 'ru' | 'pt' | 'ko' | 'ar' | 'hi' | 'it';
/** Regex fragments per language. Words match at a word start (stems: any ending) except in Chinese, Japanese and
 * Arabic (no spaces between words, or prefixes glued on), where they match anywhere; a leading `*` also means anywhere. */
type Lexicon = Partial<Record<Language, readonly string[]>>;

const MATCH_ANYWHERE: ReadonlySet<Language> = new Set(['zh', 'ja', 'ar']);
/** Not preceded by a letter, mark, digit or underscore. */
const WORD_START = '(?<![\\p{L}\\p{M}\\p{N}_])';

/** Not followed by a letter or mark (the end of a whole word). */
const WORD_END = '(?![\\p{L}\\p{M}])';

function lexiconRegex(lexicon: Lexicon, options: { wholeWords?: boolean } = {}): RegExp {
  const atWordStart: string[] = [];
  const anywhere: string[] = [];
  for (const [language, words] of Object.entries(lexicon) as [Language, readonly string[]][]) {
    for (const word of words) {
      if (word.startsWith('*')) anywhere.push(word.slice(1));
      else if (MATCH_ANYWHERE.has(language)) anywhere.push(word);
      else atWordStart.push(options.wholeWords ? `${word}${WORD_END}` : word);
    }
  }
  const parts = [];
  if (atWordStart.length > 0) parts.push(`${WORD_START}(?:${atWordStart.join('|')})`);
  if (anywhere.length > 0) parts.push(`(?:${anywhere.join('|')})`);
  return new RegExp(parts.join('|'), 'iu');
}

// --- think ----------------------------------------------------------------------------------------------------------

/** Code pasted or quoted: fences, statements, calls, error class names, operators only code uses. */
const CODE_SHAPE =
  /```|^\s*(?:def|class|function|import|from\s+\S+\s+import|#include|fn|public|private|const|let|var|func|package|using|return|SELECT|INSERT|UPDATE|CREATE\s+TABLE)\b|=>|===|!==|&&|\|\||::|\w\([^()\n]*\)\s*[{;:]\s*$|\w\[[^\]\n]*\]\s*$|\b[A-Z]\w*(?:Error|Exception)\b|\b(?:segfault|traceback|stack\s?trace|null\s?pointer)\b|\.(?:py|js|ts|jsx|tsx|java|cpp|rs|go|rb|php|sh|sql)\b/m;

/** Formulas: arithmetic between numbers, powers, functions of x, equations in unknowns, math symbols. */
const MATH_SHAPE =
  /\d\s*[-+*/^×÷=<>]\s*\(?\d|[a-zA-Z]\s*(?:\^|\*\*)\s*\d|[a-zA-Z][²³⁴⁵]|\b[a-z]\([a-z]\)|\d\s*[a-z]\s*[-+=<>]|[=<>]\s*-?\d+\s*[a-z]\b|[∫√∑∏π≤≥≠∞]|\b(?:log|ln|sin|cos|tan|lim)\s*[(₂\d]|\d!|\|[^|\n]{1,20}\|\s*[<>=]/u;

/** Names of languages, tools and formats that only come up in programming (the ambiguous ones capitalised only). */
const TECH_TERMS =
  /(?<![\p{L}\p{N}_])(?:python|javascript|typescript|c\+\+|c#|golang|kotlin|php|sql|mysql|postgres(?:ql)?|mongodb|redis|bash|powershell|node\.js|django|flutter|docker|kubernetes|github|npm|webpack|api|json|csv|yaml|html|css|regex|http|endpoint|frontend|backend|jwt|wordpress|linux|jquery|numpy|pandas|useEffect|setState|stdout|stdin)(?![\p{L}_])|(?<![\p{L}\p{N}_])(?:Java|Rust|Ruby|Swift|Scala|Haskell|React|Vue|Angular|Svelte|Express|Flask|Spring|Android|Git|Node|Shell|Go(?=\s+(?:function|program|code|server|HTTP|module)|で|로|语言))(?![\p{L}_])/u;

const CODE_WORDS = lexiconRegex({
  en: ['code', 'coding', 'programm(?:ing|er)', 'write a program', 'function', 'script', 'algorithm', 'implement', 'bug', 'debug', 'compil', 'error', 'exception', 'crash', 'refactor', 'recursi', 'query', 'database', 'deploy', 'runtime', 'segfault'],
  zh: ['代码', '程序', '函数', '算法', '实现', '报错', '错误', '调试', '编译', '脚本', '查询', '数据库', '变量', '数组', '循环', '接口', '部署', '线程', '递归', '排查', '容器', '日志'],
  ja: ['コード', 'プログラム', '関数', 'アルゴリズム', '実装', 'エラー', 'バグ', 'デバッグ', 'コンパイル', 'スクリプト', 'クエリ', 'データベース', '変数', '配列', 'ループ', 'サーバー', 'テーブル'],
  ko: ['코드', '프로그램', '함수', '알고리즘', '구현', '오류', '에러', '버그', '디버그', '컴파일', '스크립트', '쿼리', '데이터베이스', '변수', '배열', '반복문', '서버', '테이블', '앱'],
  ru: ['код', 'программ', 'функци', 'алгоритм', 'реализ', 'ошибк', 'баг', 'отлад', 'компил', 'скрипт', 'запрос', 'баз[аеуы] данных', 'переменн', 'массив', 'цикл', 'сервер', 'утечк', 'сборк', 'поток'],
  ar: ['كود', 'برمج', 'برنامج', 'دالة', 'خوارزمي', 'خطأ', 'الخطأ', 'استعلام', 'قاعدة بيانات', 'متغير', 'مصفوفة', 'حلقة', 'خادم', 'مكتبة'],
  hi: ['कोड', 'प्रोग्राम', 'फ़ंक्शन', 'फंक्शन', 'एल्गोरिदम', 'त्रुटि', 'एरर', 'बग', 'डीबग', 'क्वेरी', 'डेटाबेस', 'वेरिएबल', 'सर्वर', 'स्क्रिप्ट'],
  es: ['código', 'program', 'función', 'algoritmo', 'implementa', 'error', 'fallo', 'depura', 'compila', 'script', 'consulta', 'base de datos', 'variable', 'bucle', 'servidor', 'excepción'],
  fr: ['code', 'programme', 'fonction', 'algorithme', 'implémente', 'erreur', 'bug', 'débogu', 'compil', 'script', 'requête', 'base de données', 'variable', 'boucle', 'serveur', 'composant'],
  de: ['code', 'programm', 'funktion', 'algorithm', 'implementier', 'fehler', 'bug', 'debug', 'kompilier', 'skript', 'abfrage', 'datenbank', 'variable', 'schleife', 'server'],
  pt: ['código', 'program', 'função', 'algoritmo', 'implement', 'erro', 'bug', 'depur', 'compil', 'script', 'consulta', 'banco de dados', 'variável', 'laço', 'servidor'],
  it: ['codice', 'programma', 'funzione', 'algoritmo', 'implementa', 'errore', 'bug', 'debug', 'compila', 'script', 'query', 'database', 'variabile', 'ciclo', 'server', 'ricorsiv'],
});

const MATH_WORDS = lexiconRegex({
  en: ['solve', 'equation', 'calculat', 'comput', 'derivative', 'integra', 'limit', 'probabilit', 'primes?\\b', 'divisible', 'modulo', 'theorem', 'matri(?:x|ces)', 'eigen', 'expected', 'percent', 'ratio', 'average', 'sum of', 'area', 'volume', 'perimeter', 'how many ways', 'combinations', 'permutations', 'factorial', 'logarithm', 'square root', 'prove', 'proof', 'show that', 'induction', 'irrational', 'integers?', 'inequalit', 'real solutions'],
  zh: ['解方程', '方程', '计算', '求解', '求出', '求函数', '证明', '概率', '几率', '导数', '积分', '极值', '极限', '面积', '体积', '周长', '质数', '素数', '整除', '无理数', '定理', '矩阵', '平均', '百分之', '内角和', '多少小时', '多少种'],
  ja: ['解いて', '方程式', '計算', '確率', '微分', '積分', '極値', '極限', '面積', '体積', '素数', '割り切れ', '無理数', '証明', '定理', '行列', '平均', '何通り', '求め'],
  ko: ['방정식', '계산', '확률', '미분', '적분', '극값', '넓이', '면적', '부피', '소수', '나누어떨어', '무리수', '증명', '행렬', '평균', '경우의 수', '구하', '구해', '값을'],
  ru: ['реши', 'уравнени', 'вычисл', 'посчитай', 'найди', 'найдите', 'вероятност', 'производн', 'интеграл', 'предел', 'площад', 'объ[её]м', 'периметр', 'прост\\S* чис', 'делится', 'иррациональн', 'докаж', 'доказ', 'теорем', 'матриц', 'средн', 'сколько способов', 'процент'],
  ar: ['معادلة', 'المعادلة', 'احسب', 'حساب', 'احتمال', 'مشتقة', 'تكامل', 'مساحة', 'حجم', 'محيط', 'أولي', 'يقبل القسمة', 'غير نسبي', 'أثبت', 'برهن', 'إثبات', 'نظرية', 'مصفوفة', 'متوسط', 'زوجي', 'فردي'],
  hi: ['हल कीजिए', 'हल करें', 'हल करो', 'समीकरण', 'गणना', 'प्रायिकता', 'संभावना', 'अवकलज', 'समाकल', 'क्षेत्रफल', 'आयतन', 'परिमाप', 'अभाज्य', 'विभाज्य', 'अपरिमेय', 'सिद्ध', 'प्रमेय', 'औसत', 'प्रतिशत', 'लाभ', 'छूट', 'ब्याज', 'विषम'],
  es: ['resuelve', 'ecuaci', 'inecuaci', 'calcula', 'probabilidad', 'derivada', 'integral', 'límite', 'área', 'volumen', 'perímetro', 'primos?\\b', 'divisible', 'irracional', 'demuestra', 'teorema', 'matriz', 'promedio', 'porcentaje', 'cuántas formas', 'impar'],
  fr: ['résous', 'résoudre', 'équation', 'calcule', 'probabilité', 'dérivée', 'intégrale', 'limite', 'aire', 'volume', 'périmètre', 'nombres? premiers?', 'divisible', 'irrationnel', 'démontre', 'montre que', 'prouve', 'théorème', 'matrice', 'moyenne', 'pourcentage', 'combien de façons', 'anagramme', 'entier'],
  de: ['löse', 'gleichung', 'berechne', 'wahrscheinlichkeit', 'ableitung', 'integral', 'grenzwert', 'fläche', 'volumen', 'umfang', '*primzahl', 'teilbar', 'irrational', 'beweise', 'zeige, dass', 'matrix', 'durchschnitt', 'prozent', 'verzinst', 'zins', 'wie viele möglichkeiten'],
  pt: ['resolva', 'equação', 'calcule', 'probabilidade', 'derivada', 'integral', 'limite', 'área', 'volume', 'perímetro', 'primos?\\b', 'divisível', 'irracional', 'prove', 'demonstre', 'teorema', 'matriz', 'média', 'porcentagem', 'percentagem', 'progressão', 'quantas maneiras', 'ímpar'],
  it: ['risolvi', 'equazion', 'calcola', 'probabilità', 'derivata', 'integrale', 'limite', 'area', 'volume', 'perimetro', 'primi\\b', 'divisibile', 'irrazionale', 'dimostra', 'teorema', 'matrice', 'media', 'percentuale', 'dispari'],
});

const LOGIC_WORDS = lexiconRegex({
  en: ['puzzle', 'riddle', 'logic', 'deduc', 'paradox', 'syllogism', 'fallacy', 'knights?', 'knaves?', 'liars?', 'truth', 'lies\\b', 'who is who', 'weighings?', 'explain your reasoning', 'step by step', 'step-by-step'],
  zh: ['谜题', '谜语', '逻辑', '推理', '真话', '假话', '说谎', '悖论', '小偷', '犯人', '天平'],
  ja: ['パズル', 'なぞなぞ', '論理', '推理', '嘘', '犯人', '天秤', 'パラドックス'],
  ko: ['퍼즐', '수수께끼', '논리', '추론', '진실', '거짓', '범인', '역설', '저울'],
  ru: ['загадк', 'головоломк', 'логи[кч]', 'рыцар', 'лжец', 'правду', 'лгут', 'парадокс', 'объясни'],
  ar: ['لغز', 'ألغاز', 'منطق', 'استنتج', 'الحقيقة', 'يكذب', 'الكذب', 'مفارقة', 'علّل', 'علل'],
  hi: ['पहेली', 'तर्क', 'सच', 'झूठ', 'निष्कर्ष', 'विरोधाभास'],
  es: ['acertijo', 'adivinanza', 'lógica', 'deduc', 'paradoja', 'mienten?', 'verdad', 'razona', 'silogismo', 'paso a paso'],
  fr: ['énigme', 'devinette', 'logique', 'dédui', 'paradoxe', 'mentent', 'vérité', 'raisonnement', 'explique', 'étape par étape'],
  de: ['rätsel', 'logik', 'logisch', 'folger', 'paradox', 'lügt', 'lügen', 'wahrheit', 'schritt für schritt'],
  pt: ['enigma', 'charada', 'lógica', 'deduz', 'paradoxo', 'mentem?', 'verdade', 'raciocínio', 'justifique', 'passo a passo'],
  it: ['indovinello', 'enigma', 'logica', 'deduci', 'paradosso', 'mentono', 'verità', 'ragionamento', 'passo dopo passo'],
});

const PLAN_WORDS = lexiconRegex({
  en: ['plan', 'roadmap', 'schedule', 'strateg', 'design', 'architect', 'migrat', 'compare', 'comparison', 'analy[sz]', 'pros and cons', 'trade-?offs?', 'weigh', 'evaluate', 'recommend', 'optimi[sz]', 'phases', 'risks', 'walk (?:me )?through'],
  zh: ['计划', '规划', '步骤', '分析', '比较', '优缺点', '利弊', '策略', '风险', '阶段', '建议', '方案'],
  ja: ['計画', '分析', '比較', '手順', '段階', 'リスク', '戦略', 'メリット', '整理して', '予定'],
  ko: ['계획', '분석', '비교', '단계', '전략', '장단점', '리스크', '위험', '정리해'],
  ru: ['план', 'анализ', 'сравни', 'этап', 'стратег', 'риск', 'плюсы', 'минусы', 'разбери', 'выгодн', 'подготовк'],
  ar: ['خطة', 'حلل', 'تحليل', 'قارن', 'مقارنة', 'مرحلي', 'استراتيجي', 'مخاطر', 'إيجابيات', 'سلبيات', 'توصية'],
  hi: ['योजना', 'विश्लेषण', 'तुलना', 'चरण', 'रणनीति', 'जोखिम'],
  es: ['plan', 'planifica', 'analiza', 'análisis', 'compara', 'ventajas', 'desventajas', 'estrategia', 'riesgos', 'fases', 'organiza', 'optimiza'],
  fr: ['plan', 'planifi', 'analys', 'compare', 'avantages', 'inconvénients', 'stratégie', 'risques', 'phases', 'organiser', 'calendrier'],
  de: ['*plan', 'analys', 'vergleich', 'vorteile', 'nachteile', 'strategie', 'risiken', 'phasen', 'umstellung'],
  pt: ['plano', 'planej', 'analis', 'análise', 'compar', 'prós', 'contras', 'estratégia', 'riscos', 'fases', 'monte'],
  it: ['piano', 'pianific', 'analizza', 'analisi', 'confronta', 'pro e contro', 'strategia', 'rischi', 'fasi', 'organizza', 'itinerario'],
});

/** Asking for causes or reasons: weaker alone, decisive next to a topic cue. */
const WHY_WORDS = lexiconRegex({
  en: ['why', 'causes?', 'reasons?', 'what could explain', "what's going on", 'how do i fix', 'how can i fix'],
  zh: ['为什么', '原因', '怎么办', '怎么排查', '如何解决'],
  ja: ['なぜ', '原因', 'どうすれば', '対処'],
  ko: ['왜', '원인', '해결'],
  ru: ['почему', 'причин', 'что делать'],
  ar: ['لماذا', 'السبب', 'أسباب', 'كيف أصلح'],
  hi: ['क्यों', 'कारण', 'कैसे ठीक'],
  es: ['por qué', 'causa', 'cómo lo arreglo', 'explicarlo'],
  fr: ['pourquoi', 'cause', "qu'est-ce qui se passe"],
  de: ['warum', 'woran', 'gründe?'],
  pt: ['por que', 'causas?', 'como resolvo'],
  it: ['perché', 'cause', 'dove sbaglio'],
});

// --- don't think ----------------------------------------------------------------------------------------------------

/** Greetings, thanks and small talk at the start of a prompt. */
const GREETING = lexiconRegex({
  en: ['hi\\b', 'hello', 'hey\\b', 'yo\\b', 'thanks', 'thank you', 'thx', 'cheers', 'good (?:morning|afternoon|evening|night)', 'how are you', "what'?s up", 'ok(?:ay)?\\b', 'cool\\b', 'nice\\b', 'bye\\b'],
  zh: ['你好', '您好', '嗨', '早上好', '晚上好', '谢谢', '多谢', '在吗', '好的'],
  ja: ['こんにちは', 'こんばんは', 'おはよう', 'ありがとう', 'どうも', 'やあ'],
  ko: ['안녕', '감사', '고마워', '좋은 아침'],
  ru: ['привет', 'здравствуй', 'добр(?:ый|ое)', 'спасибо', 'благодар'],
  ar: ['مرحب', 'السلام عليكم', 'صباح الخير', 'مساء الخير', 'شكر', 'ألف شكر'],
  hi: ['नमस्ते', 'नमस्कार', 'सुप्रभात', 'हैलो', 'धन्यवाद', 'शुक्रिया', 'बहुत-बहुत धन्यवाद'],
  es: ['hola', 'buen(?:os|as) (?:días|tardes|noches)', 'gracias', 'qué tal'],
  fr: ['bonjour', 'salut', 'bonsoir', 'merci', 'super'],
  de: ['hallo', 'guten (?:morgen|tag|abend)', 'servus', 'moin', 'danke', 'vielen dank'],
  pt: ['olá', 'oi\\b', 'bom dia', 'boa (?:tarde|noite)', 'obrigad', 'valeu', 'e aí'],
  it: ['ciao', 'buongiorno', 'buonasera', 'salve', 'grazie', 'perfetto'],
}, { wholeWords: true });

/** Translating, rephrasing, correcting, summarising or shortening a given text. */
const REWRITE_WORDS = lexiconRegex({
  en: ['translat', 'rephrase', 'rewrite', 'reword', 'paraphrase', 'summari[sz]e', 'proofread', 'shorten', 'fix the (?:grammar|spelling|typos?)', 'make (?:it|this) (?:shorter|longer|sound|more|less)', 'tl;?dr', 'how do you say', 'put this into', 'more formally', 'more politely'],
  zh: ['翻译', '译成', '怎么说', '改写', '改得', '润色', '概括', '总结', '改正', '错别字', '缩短'],
  ja: ['訳して', '翻訳', '何と言', 'にしてください', '書き直', '丁寧に', '要約', '短くして', '誤字', '直して'],
  ko: ['번역', '뭐라고', '바꿔', '공손', '맞춤법', '요약', '줄여', '고쳐'],
  ru: ['переведи', 'перевод', 'как по-', 'перефразируй', 'исправь ошибки', 'перескажи', 'короче', 'вежливее'],
  ar: ['ترجم', 'كيف أقول', 'أعد صياغة', 'صحح', 'لخص', 'أقصر', 'بأسلوب'],
  hi: ['अनुवाद', 'में क्या कहते', 'विनम्र', 'वर्तनी', 'सारांश', 'छोटा कर', 'में बदल'],
  es: ['traduce', 'cómo se dice', 'reescribe', 'corrige la ortografía', 'resume', 'más corto', 'más educad', 'pásame esto'],
  fr: ['tradui', 'comment dit-on', 'reformule', 'corrige les fautes', 'résume', 'plus court', 'plus poli'],
  de: ['übersetze', 'was heißt', 'formuliere', 'korrigiere', 'fass\\S* .*zusammen', 'kürzer', 'freundlicher'],
  pt: ['traduz', 'como se diz', 'reescreva', 'corrija', 'resuma', 'mais curto', 'mais educad'],
  it: ['tradu', 'come si dice', 'riformula', 'correggi', 'riassumi', 'accorcia', 'più gentile'],
});

/** A short factual question: who / what / when / where / how tall, what does … mean. */
const LOOKUP_SHAPE = lexiconRegex({
  en: ["(?:what|who|when|where|which)(?:'s|'re| is| are| was| were| does| did)", 'how (?:tall|long|big|old|far|many people)'],
  zh: ['是谁', '是哪', '哪个', '多高', '多长', '几月', '什么意思', '是什么', '在哪'],
  ja: ['誰', '何ですか', 'どこ', '何年', 'どれくらい', '意味'],
  ko: ['누구', '어디', '몇 년', '얼마', '무슨 뜻'],
  ru: ['кто', 'где', 'когда', 'в каком году', 'какая', 'что означает'],
  ar: ['ما هي', 'ما هو', 'من هو', 'متى', 'أين', 'ماذا تعني'],
  hi: ['क्या है', 'किसने', 'कहाँ', 'किस साल', 'क्या मतलब'],
  es: ['cuál es', 'quién', 'cuándo', 'dónde', 'en qué año', 'qué significa', 'cuántos habitantes'],
  fr: ['quelle est', 'qui a', 'en quelle année', 'où', 'que veut dire'],
  de: ['was ist', 'wer hat', 'wann', 'wo\\b', 'wie (?:lang|hoch|alt)', 'was bedeutet'],
  pt: ['qual é', 'quem', 'em que ano', 'onde', 'o que significa'],
  it: ['qual è', 'chi ha', 'in che anno', 'dove', 'quanto è', 'cosa significa'],
});

/** Short creative pieces: poems, jokes, names, short messages. */
const CREATIVE_WORDS = lexiconRegex({
  en: ['poem', 'haiku', 'joke', 'limerick', 'name for', 'slogan', 'birthday message', 'tagline'],
  zh: ['诗', '笑话', '起个', '名字'],
  ja: ['俳句', '詩', '名前', '面白い話', 'ジョーク'],
  ko: ['시를', '농담', '이름'],
  ru: ['стих', 'анекдот', 'шутк', 'название'],
  ar: ['شعر', 'نكتة', 'اسم'],
  hi: ['कविता', 'चुटकुला', 'नाम'],
  es: ['haiku', 'poema', 'chiste', 'nombre'],
  fr: ['poème', 'blague', 'nom pour'],
  de: ['gedicht', 'witz', 'name'],
  pt: ['poema', 'piada', 'nome'],
  it: ['poesia', 'barzelletta', 'nome'],
});

// --- scoring ----------------------------------------------------------------------------------------------------------

type Cue = { name: string; weight: number; matches: (text: string) => boolean };

const QUESTION_MARKS = /[?？؟]/g;
const NUMBER = /\p{Nd}+(?:[.,]\p{Nd}+)?/gu;

/** Two or more numbers and a question: "A train leaves at 3pm going 60 mph … When does it arrive?" */
function isWordProblem(text: string): boolean {
  QUESTION_MARKS.lastIndex = 0;
  return QUESTION_MARKS.test(text) && (text.match(NUMBER)?.length ?? 0) >= 2;
}

/** Positive cues first: a negative cue other than rewriting counts only when nothing so far asks for reasoning. */
const CUES: readonly Cue[] = [
  { name: 'code', weight: 4, matches: (t) => CODE_SHAPE.test(t) },
  { name: 'code', weight: 3, matches: (t) => TECH_TERMS.test(t) || CODE_WORDS.test(t) },
  { name: 'math', weight: 3, matches: (t) => MATH_SHAPE.test(t) || MATH_WORDS.test(t) || isWordProblem(t) },
  { name: 'logic', weight: 3, matches: (t) => LOGIC_WORDS.test(t) },
  { name: 'multi-step', weight: 3, matches: (t) => PLAN_WORDS.test(t) },
  { name: 'why', weight: 2, matches: (t) => WHY_WORDS.test(t) },
  { name: 'chit-chat', weight: -4, matches: (t) => t.length < 80 && GREETING.test(t.slice(0, 24)) },
  { name: 'rewrite', weight: -3, matches: (t) => REWRITE_WORDS.test(t) },
  { name: 'lookup', weight: -3, matches: (t) => t.length < 200 && LOOKUP_SHAPE.test(t) },
  { name: 'creative', weight: -3, matches: (t) => t.length < 200 && CREATIVE_WORDS.test(t) },
];

/** Prompts at or above this score think. */
const AUTO_THRESHOLD = 3;

/** Cheap verdict on one prompt: thinking for math, code, logic and multi-step tasks; not for chit-chat, lookups, rewrites. */
export function classifyPrompt(prompt: string): { enabled: boolean; reason: string; score: number } {
  const text = prompt.length > 4000 ? `${prompt.slice(0, 2000)}\n${prompt.slice(-2000)}` : prompt;
  let score = 0;
  let strongest: Cue | undefined;
  const seen = new Set<string>();
  for (const cue of CUES) {
    if (seen.has(cue.name)) continue;
    if (cue.weight < 0 && cue.name !== 'rewrite' && score > 0) continue;
    if (!cue.matches(text)) continue;
    seen.add(cue.name); // each kind of cue counts once
    score += cue.weight;
    if (!strongest || Math.abs(cue.weight) > Math.abs(strongest.weight)) strongest = cue;
  }
  QUESTION_MARKS.lastIndex = 0;
  const questions = text.match(QUESTION_MARKS)?.length ?? 0;
  const numberedSteps = (text.match(/^\s*\d+[.)]\s/gm) ?? []).length;
  if (questions >= 2 || numberedSteps >= 2) score += 1;
  if (text.length > 600) score += 1;

  const enabled = score >= AUTO_THRESHOLD;
  const cue = strongest && strongest.weight > 0 === enabled ? strongest.name : enabled ? 'long or multi-part' : 'no reasoning cues';
  return { enabled, reason: `classifier: ${cue} (score ${score})`, score };
}
