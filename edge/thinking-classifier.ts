// The auto mode's prompt classifier: should Qwen3 think about this prompt? A cue scorer over the latest user message
// that works in the languages Qwen3 is most used in (English, Chinese, Spanish, French, German, Japanese, Russian,
// Portuguese, Korean, Arabic, Hindi, Italian): shapes that need no language (code, formulas, numbers in a question, a
// question after some setup) plus, per language, the words that ask for math, proofs, code, debugging, logic,
// planning or analysis (think) and for greetings, thanks, lookups, translation, rewriting or short creative pieces
// (don't think). One pass over the prompt finds every word, plus a few ASCII regular expressions: well under 1 ms, a
// few kB in the bundle (bench/thinking-classifier.mjs measures both, and the accuracy per language on
// test/fixtures/thinking-prompts.json).

type Language = 'en' | 'zh' | 'es' | 'fr' | 'de' | 'ja' | 'ru' | 'pt' | 'ko' | 'ar' | 'hi' | 'it';
type Category = 'code' | 'tech' | 'build' | 'math' | 'logic' | 'multi-step' | 'why' | 'chit-chat' | 'rewrite' | 'lookup' | 'creative';
/**
 * Words per language, lower case. A word matches at a word start and may go on (a stem: `implement` finds
 * "implementing"); `=word` must also end there; `*word` may start anywhere (`*=plan` finds "Trainingsplan" but not
 * "Pflanze"). Chinese, Japanese and Arabic words match anywhere (no spaces between words, or prefixes glued on).
 */
type Lexicon = Partial<Record<Language, readonly string[]>>;

const MATCH_ANYWHERE: ReadonlySet<Language> = new Set(['zh', 'ja', 'ar']);

type LexiconEntry = { text: string; category: Category; wholeWord: boolean };

/** Words keyed by their first two UTF-16 units: the one-unit words, and the longer ones by their second unit. */
type WordTableNode = { single: LexiconEntry[]; bySecondUnit: Map<number, LexiconEntry[]> };

class WordTable {
  private readonly byFirstUnit: (WordTableNode | undefined)[] = new Array<undefined>(0x10000);

  add(entry: LexiconEntry): void {
    const node: WordTableNode = (this.byFirstUnit[entry.text.charCodeAt(0)] ??= { single: [], bySecondUnit: new Map() });
    if (entry.text.length === 1) {
      node.single.push(entry);
      return;
    }
    const second = entry.text.charCodeAt(1);
    const list = node.bySecondUnit.get(second);
    if (list) list.push(entry);
    else node.bySecondUnit.set(second, [entry]);
  }

  /** Records in `found` the categories of the words that start at text[at]. */
  match(text: string, at: number, found: Map<Category, number>): void {
    const node = this.byFirstUnit[text.charCodeAt(at)];
    if (node === undefined) return;
    if (node.single.length > 0) matchEntries(node.single, text, at, found);
    const pair = at + 1 < text.length ? node.bySecondUnit.get(text.charCodeAt(at + 1)) : undefined;
    if (pair) matchEntries(pair, text, at, found);
  }
}

function matchEntries(entries: LexiconEntry[], text: string, at: number, found: Map<Category, number>): void {
  for (const entry of entries) {
    if (found.has(entry.category) || !text.startsWith(entry.text, at)) continue;
    const end = at + entry.text.length;
    if (entry.wholeWord && end < text.length && unitClass(text.charCodeAt(end)) === LETTER) continue;
    found.set(entry.category, at);
  }
}

/**
 * Every lexicon word in two tables, so a single pass over the prompt finds them all with a couple of array and map
 * lookups per word start (a regular expression over hundreds of non-ASCII alternatives costs about 100 ns per
 * character per expression in V8): words that must start a word are looked up only where a word starts.
 */
class LexiconIndex {
  private readonly atWordStart = new WordTable();
  private readonly anywhere = new WordTable();

  add(category: Category, lexicon: Lexicon): void {
    for (const [language, words] of Object.entries(lexicon) as [Language, readonly string[]][]) {
      for (const word of words) {
        const marks = /^[*=]*/.exec(word)![0];
        const anywhere = marks.includes('*') || MATCH_ANYWHERE.has(language);
        const entry: LexiconEntry = { text: word.slice(marks.length).toLowerCase(), category, wholeWord: marks.includes('=') };
        (anywhere ? this.anywhere : this.atWordStart).add(entry);
      }
    }
  }

  /** Categories found in lower-cased text, each with the position of its first match. */
  find(text: string): Map<Category, number> {
    const found = new Map<Category, number>();
    let previous = OTHER;
    for (let i = 0; i < text.length; i++) {
      if (previous === OTHER) this.atWordStart.match(text, i, found);
      this.anywhere.match(text, i, found);
      previous = unitClass(text.charCodeAt(i));
    }
    return found;
  }
}

/** What a UTF-16 unit is for word boundaries: a letter or mark, a digit or "_" (part of a word, but not a letter), other. */
const OTHER = 1;
const LETTER = 2;
const DIGIT = 3;
const unitClasses = new Uint8Array(0x10000); // 0 = not looked up yet
const LETTER_OR_MARK = /[\p{L}\p{M}]/u;
const DECIMAL_DIGIT = /\p{Nd}/u;

function unitClass(unit: number): number {
  const known = unitClasses[unit];
  if (known !== 0) return known;
  const char = String.fromCharCode(unit);
  const kind = (unit >= 0xd800 && unit <= 0xdfff) || LETTER_OR_MARK.test(char) ? LETTER : DECIMAL_DIGIT.test(char) || unit === 0x5f ? DIGIT : OTHER;
  unitClasses[unit] = kind;
  return kind;
}

// --- think ----------------------------------------------------------------------------------------------------------

/** Code pasted or quoted: fences, statements, calls, error class names, operators only code uses. */
const CODE_SHAPE =
  /```|^\s*(?:def|class|function|import|from\s+\S+\s+import|#include|fn|public|private|const|let|var|func|package|using|return|SELECT|INSERT|UPDATE|CREATE\s+TABLE)\b|=>|===|!==|&&|\|\||::|\w\([^()\n]*\)\s*[{;:]\s*$|\w\[[^\]\n]*\]\s*$|\b[A-Z]\w*(?:Error|Exception)\b|\b(?:segfault|traceback|stack\s?trace|null\s?pointer)\b|\.(?:py|js|ts|jsx|tsx|java|cpp|rs|go|rb|php|sh|sql)\b/m;

/** Formulas: arithmetic between numbers, powers, functions of x, equations in unknowns, math symbols. */
const MATH_SHAPE =
  /\d\s*[-+*/^×÷=<>]\s*\(?\d|[a-zA-Z]\s*(?:\^|\*\*)\s*\d|[a-zA-Z][²³⁴⁵]|\b[a-z]\([a-z]\)|\d\s*[a-z]\s*[-+=<>]|[=<>]\s*-?\d+\s*[a-z]\b|[∫√∑∏π≤≥≠∞]|\b(?:log|ln|sin|cos|tan|lim)\s*[(₂\d]|\d!|\|[^|\n]{1,20}\|\s*[<>=]/;

/** Programming names that are also ordinary words, recognised only as capitalised (Go only next to a code word). */
const CAPITALISED_TECH_NAMES =
  /(?<![A-Za-z_])(?:Java|Rust|Ruby|Swift|Scala|Haskell|React|Vue|Angular|Svelte|Express|Flask|Spring|Android|Git|Node|Shell|Go(?=\s+(?:function|program|code|server|HTTP|module)|で|로|语言))(?![A-Za-z_])/;

const LEXICONS: Record<Category, Lexicon> = {
  code: {
    en: ['code', 'coding', 'programming', 'programmer', 'write a program', 'function', 'script', 'algorithm', 'implement', 'bug', 'debug', 'compil', 'error', 'exception', 'crash', 'refactor', 'recursi', 'query', 'database', 'deploy', 'runtime', 'segfault', 'complexity', 'big-o', 'big o'],
    zh: ['代码', '程序', '函数', '算法', '实现', '报错', '错误', '调试', '编译', '脚本', '查询', '数据库', '变量', '数组', '循环', '接口', '部署', '线程', '递归', '排查', '容器', '日志', '复杂度'],
    ja: ['コード', 'プログラム', '関数', 'アルゴリズム', '実装', 'エラー', 'バグ', 'デバッグ', 'コンパイル', 'スクリプト', 'クエリ', 'データベース', '変数', '配列', 'ループ', 'サーバー', 'テーブル', '計算量'],
    ko: ['코드', '프로그램', '함수', '알고리즘', '구현', '오류', '에러', '버그', '디버그', '컴파일', '스크립트', '쿼리', '데이터베이스', '변수', '배열', '반복문', '서버', '테이블', '앱', '복잡도'],
    ru: ['код', 'программ', 'функци', 'алгоритм', 'реализ', 'ошибк', 'баг', 'отлад', 'компил', 'скрипт', 'запрос', 'база данных', 'базы данных', 'базе данных', 'базу данных', 'переменн', 'массив', 'цикл', 'сервер', 'утечк', 'сборк', 'поток', 'сложност'],
    ar: ['كود', 'برمج', 'برنامج', 'دالة', 'خوارزمي', 'خطأ', 'استعلام', 'قاعدة بيانات', 'متغير', 'مصفوفة', 'حلقة', 'خادم', 'مكتبة', 'تعقيد'],
    hi: ['कोड', 'प्रोग्राम', 'फ़ंक्शन', 'फंक्शन', 'एल्गोरिदम', 'त्रुटि', 'एरर', 'बग', 'डीबग', 'क्वेरी', 'डेटाबेस', 'वेरिएबल', 'सर्वर', 'स्क्रिप्ट', 'जटिलता'],
    es: ['código', 'program', 'función', 'algoritmo', 'implementa', 'error', 'fallo', 'depura', 'compila', 'script', 'consulta', 'base de datos', 'variable', 'bucle', 'servidor', 'excepción', 'complejidad'],
    fr: ['code', 'programme', 'fonction', 'algorithme', 'implémente', 'erreur', 'bug', 'débogu', 'compil', 'script', 'requête', 'base de données', 'variable', 'boucle', 'serveur', 'composant', 'complexité'],
    de: ['code', 'programm', '=funktion', '=funktionen', 'algorithm', 'implementier', 'fehler', 'bug', 'debug', 'kompilier', 'skript', 'abfrage', 'datenbank', 'variable', 'schleife', 'server', 'komplexität'],
    pt: ['código', 'program', 'função', 'algoritmo', 'implement', 'erro', 'bug', 'depur', 'compil', 'script', 'consulta', 'banco de dados', 'variável', 'laço', 'servidor', 'complexidade'],
    it: ['codice', 'programma', 'funzione', 'algoritmo', 'implementa', 'errore', 'bug', 'debug', 'compila', 'script', 'query', 'database', 'variabile', 'ciclo', 'server', 'ricorsiv', 'complessità'],
  },
  // names of languages, tools and formats that only come up in programming: weaker alone ("What does HTTP stand for?")
  tech: {
    en: ['=python', '=javascript', '=typescript', '=c++', '=c#', '=golang', '=kotlin', '=php', '=sql', '=mysql', '=postgres', '=postgresql', '=mongodb', '=redis', '=bash', '=powershell', '=node.js', '=django', '=flutter', '=docker', '=kubernetes', '=github', '=npm', '=webpack', '=api', '=json', '=csv', '=yaml', '=html', '=css', '=regex', '=http', '=endpoint', '=frontend', '=backend', '=jwt', '=wordpress', '=linux', '=jquery', '=numpy', '=pandas', '=useeffect', '=setstate', '=stdout', '=stdin'],
  },
  // asking for something to be written or made: a nudge that turns a tech name into a coding task
  build: {
    en: ['write', 'create', 'build', 'make', 'generate'],
    zh: ['写', '做一个', '生成'],
    ja: ['書いて', '作って', '作り', '作成'],
    ko: ['작성', '만들', '짜 줘', '짜줘'],
    ru: ['напиши', 'создай', 'сделай', 'написать'],
    ar: ['اكتب', 'أنشئ', 'أكتب'],
    hi: ['लिखो', 'लिखिए', 'लिखें', 'बनाओ', 'बनाइए', 'बनाना'],
    es: ['escribe', 'crea', '=haz', 'haría', 'hago'],
    fr: ['écris', 'crée', '=fais', 'créer'],
    de: ['schreib', 'erstelle', '=bau', 'baue'],
    pt: ['escreva', 'crie', 'faça', 'faço', 'criar'],
    it: ['scrivi', '=crea', '=fai', 'creare'],
  },
  math: {
    en: ['solve', 'equation', 'calculat', 'comput', 'derivative', 'integra', 'limit', 'probabilit', '=prime', '=primes', 'divisible', 'modulo', 'theorem', 'matrix', 'matrices', 'eigen', 'expected', 'percent', 'ratio', 'average', 'sum of', 'area', 'volume', 'perimeter', 'how many ways', 'combinations', 'permutations', 'factorial', 'logarithm', 'square root', 'prove', 'proof', 'show that', 'induction', 'irrational', 'integer', 'inequalit', 'real solutions'],
    zh: ['解方程', '方程', '计算', '求解', '求出', '求函数', '证明', '概率', '几率', '导数', '积分', '极值', '极限', '面积', '体积', '周长', '质数', '素数', '整除', '无理数', '定理', '矩阵', '平均', '百分之', '内角和', '多少小时', '多少种'],
    ja: ['解いて', '方程式', '計算', '確率', '微分', '積分', '極値', '極限', '面積', '体積', '素数', '割り切れ', '無理数', '証明', '定理', '行列', '平均', '何通り', '求め'],
    ko: ['방정식', '계산', '확률', '미분', '적분', '극값', '넓이', '면적', '부피', '소수', '나누어떨어', '무리수', '증명', '행렬', '평균', '경우의 수', '구하', '구해', '값을'],
    ru: ['реши', 'уравнени', 'вычисл', 'посчитай', 'найди', 'найдите', 'вероятност', 'производн', 'интеграл', 'предел', 'площад', 'объём', 'объем', 'периметр', 'простое чис', 'простые чис', 'простых чис', 'простого чис', 'делится', 'иррациональн', 'докаж', 'доказ', 'теорем', 'матриц', 'средн', 'сколько способов', 'процент'],
    ar: ['معادلة', 'المعادلة', 'احسب', 'حساب', 'احتمال', 'مشتقة', 'تكامل', 'مساحة', 'حجم', 'محيط', 'أولي', 'يقبل القسمة', 'غير نسبي', 'أثبت', 'برهن', 'إثبات', 'نظرية', 'مصفوفة', 'متوسط', 'زوجي', 'فردي'],
    hi: ['हल कीजिए', 'हल करें', 'हल करो', 'समीकरण', 'गणना', 'प्रायिकता', 'संभावना', 'अवकलज', 'समाकल', 'क्षेत्रफल', 'आयतन', 'परिमाप', 'अभाज्य', 'विभाज्य', 'अपरिमेय', 'सिद्ध', 'प्रमेय', 'औसत', 'प्रतिशत', 'लाभ', 'छूट', 'ब्याज', 'विषम'],
    es: ['resuelve', 'ecuaci', 'inecuaci', 'calcula', 'probabilidad', 'derivada', 'integral', 'límite', 'área', 'volumen', 'perímetro', '=primo', '=primos', 'divisible', 'irracional', 'demuestra', 'teorema', 'matriz', 'promedio', 'porcentaje', 'cuántas formas', 'impar'],
    fr: ['résous', 'résoudre', 'équation', 'calcule', 'probabilité', 'dérivée', 'intégrale', 'limite', 'aire', 'volume', 'périmètre', 'nombre premier', 'nombres premiers', 'divisible', 'irrationnel', 'démontre', 'montre que', 'prouve', 'théorème', 'matrice', 'moyenne', 'pourcentage', 'combien de façons', 'anagramme', 'entier'],
    de: ['löse', 'gleichung', 'berechne', 'wahrscheinlichkeit', 'ableitung', 'integral', 'grenzwert', 'fläche', 'volumen', 'umfang', '*primzahl', 'teilbar', 'irrational', 'beweise', 'zeige, dass', 'matrix', 'durchschnitt', 'prozent', 'verzinst', 'zins', 'wie viele möglichkeiten'],
    pt: ['resolva', 'equação', 'calcule', 'probabilidade', 'derivada', 'integral', 'limite', 'área', 'volume', 'perímetro', '=primo', '=primos', 'divisível', 'irracional', 'prove', 'demonstre', 'teorema', 'matriz', 'média', 'porcentagem', 'percentagem', 'progressão', 'quantas maneiras', 'ímpar'],
    it: ['risolvi', 'equazion', 'calcola', 'probabilità', 'derivata', 'integrale', 'limite', 'area', 'volume', 'perimetro', '=primi', 'divisibile', 'irrazionale', 'dimostra', 'teorema', 'matrice', 'media', 'percentuale', 'dispari'],
  },
  logic: {
    en: ['conclude', 'puzzle', 'riddle', 'logic', 'deduc', 'paradox', 'syllogism', 'fallacy', 'knight', 'knave', 'liar', 'truth', '=lies', 'who is who', 'weighing', 'explain your reasoning', 'step by step', 'step-by-step'],
    zh: ['结论', '推出', '谜题', '谜语', '逻辑', '推理', '真话', '假话', '说谎', '悖论', '小偷', '犯人', '天平'],
    ja: ['結論', 'パズル', 'なぞなぞ', '論理', '推理', '嘘', '犯人', '天秤', 'パラドックス'],
    ko: ['결론', '퍼즐', '수수께끼', '논리', '추론', '진실', '거짓', '범인', '역설', '저울'],
    ru: ['следует ли', 'вывод', 'загадк', 'головоломк', 'логик', 'логич', 'рыцар', 'лжец', 'правду', 'лгут', 'парадокс', 'объясни'],
    ar: ['لغز', 'ألغاز', 'منطق', 'ستنتج', 'الحقيقة', 'يكذب', 'الكذب', 'مفارقة', 'علّل', 'علل'],
    hi: ['पहेली', 'तर्क', 'सच', 'झूठ', 'निष्कर्ष', 'विरोधाभास'],
    es: ['concluir', 'acertijo', 'adivinanza', 'lógica', 'deduc', 'paradoja', 'miente', 'verdad', 'razona', 'silogismo', 'paso a paso'],
    fr: ['conclure', 'énigme', 'devinette', 'logique', 'dédui', 'paradoxe', 'mentent', 'vérité', 'raisonnement', 'explique', 'étape par étape'],
    de: ['schließen', 'rätsel', 'logik', 'logisch', 'folger', 'paradox', 'lügt', 'lügen', 'wahrheit', 'schritt für schritt'],
    pt: ['concluir', 'enigma', 'charada', 'lógica', 'deduz', 'paradoxo', 'mente', 'verdade', 'raciocínio', 'justifique', 'passo a passo'],
    it: ['concludere', 'indovinello', 'enigma', 'logica', 'deduci', 'paradosso', 'mentono', 'verità', 'ragionamento', 'passo dopo passo'],
  },
  'multi-step': {
    en: ['possible causes', 'possible explanations', 'possible reasons', '=plan', '=plans', 'planning', '=planned', 'roadmap', 'schedule', 'strateg', 'design', 'architect', 'migrat', 'compare', 'comparison', 'analys', 'analyz', 'pros and cons', 'trade-off', 'tradeoff', 'trade off', 'weigh', 'evaluate', 'optimis', 'optimiz', 'phases', 'risks', 'walk me through', 'walk through'],
    zh: ['可能的原因', '哪些原因', '计划', '规划', '步骤', '分析', '比较', '优缺点', '利弊', '策略', '风险', '阶段', '方案'],
    ja: ['考えられる原因', '調べ方', '計画', '分析', '比較', '手順', '段階', 'リスク', '戦略', 'メリット', '整理して', '予定'],
    ko: ['가능한 원인', '계획', '분석', '비교', '단계', '전략', '장단점', '리스크', '위험', '정리해'],
    ru: ['возможные причины', 'план', 'анализ', 'сравни', 'этап', 'стратег', 'риск', 'плюсы', 'минусы', 'разбери', 'выгодн', 'подготовк'],
    ar: ['الأسباب المحتملة', 'خطة', 'حلل', 'تحليل', 'قارن', 'مقارنة', 'مرحلي', 'استراتيجي', 'مخاطر', 'إيجابيات', 'سلبيات'],
    hi: ['संभावित कारण', 'योजना', 'विश्लेषण', 'तुलना', 'चरण', 'रणनीति', 'जोखिम'],
    es: ['posibles causas', '=plan', 'planifica', 'planea', 'analiza', 'análisis', 'compara', 'ventajas', 'desventajas', 'estrategia', 'riesgos', 'fases', 'organiza', 'optimiza'],
    fr: ['causes possibles', '=plan', 'planifi', 'analys', 'compare', 'avantages', 'inconvénients', 'stratégie', 'risques', 'phases', 'organiser', 'calendrier'],
    de: ['mögliche gründe', 'mögliche ursachen', '*=plan', 'planen', 'planung', '=plane', 'analys', 'vergleich', 'vorteile', 'nachteile', 'strategie', 'risiken', 'phasen', 'umstellung'],
    pt: ['possíveis causas', 'plano', 'planej', 'analis', 'análise', 'compar', 'prós', 'contras', 'estratégia', 'riscos', 'fases', 'monte'],
    it: ['possibili cause', 'piano', 'pianific', 'analizza', 'analisi', 'confronta', 'pro e contro', 'strategia', 'rischi', 'fasi', 'organizza', 'itinerario'],
  },
  // asking for causes or reasons: weaker alone, decisive next to a topic cue
  why: {
    en: ['why', 'cause', 'reason', 'what could explain', "what's going on", 'how do i fix', 'how can i fix'],
    zh: ['为什么', '原因', '怎么办', '怎么排查', '如何解决'],
    ja: ['なぜ', '原因', 'どうすれば', '対処'],
    ko: ['왜', '원인', '해결'],
    ru: ['почему', 'причин', 'что делать'],
    ar: ['لماذا', 'السبب', 'أسباب', 'كيف أصلح'],
    hi: ['क्यों', 'कारण', 'कैसे ठीक'],
    es: ['por qué', 'causa', 'cómo lo arreglo', 'explicarlo'],
    fr: ['pourquoi', 'cause', "qu'est-ce qui se passe"],
    de: ['warum', 'woran', 'gründ'],
    pt: ['por que', 'causa', 'como resolvo'],
    it: ['perché', 'cause', 'dove sbaglio'],
  },
  // --- don't think: greetings, thanks and small talk (looked for at the start of a short prompt only) ---
  'chit-chat': {
    en: ['=hi', '=hello', '=hey', '=yo', '=thanks', '=thank you', '=thx', '=cheers', '=good morning', '=good afternoon', '=good evening', '=good night', '=how are you', "=what's up", '=whats up', '=ok', '=okay', '=cool', '=nice', '=bye'],
    zh: ['你好', '您好', '嗨', '早上好', '晚上好', '谢谢', '多谢', '在吗', '好的'],
    ja: ['こんにちは', 'こんばんは', 'おはよう', 'ありがとう', 'どうも', 'やあ'],
    ko: ['안녕', '감사', '고마워', '좋은 아침'],
    ru: ['привет', 'здравствуй', '=добрый', '=доброе', 'спасибо', 'благодар'],
    ar: ['مرحب', 'السلام عليكم', 'صباح الخير', 'مساء الخير', 'شكر', 'ألف شكر'],
    hi: ['=नमस्ते', '=नमस्कार', '=सुप्रभात', '=हैलो', '=धन्यवाद', '=शुक्रिया', '=बहुत-बहुत धन्यवाद'],
    es: ['=hola', '=buenos días', '=buenas tardes', '=buenas noches', '=gracias', '=qué tal'],
    fr: ['=bonjour', '=salut', '=bonsoir', '=merci', '=super'],
    de: ['=hallo', '=guten morgen', '=guten tag', '=guten abend', '=servus', '=moin', '=danke', '=vielen dank'],
    pt: ['=olá', '=oi', '=bom dia', '=boa tarde', '=boa noite', 'obrigad', '=valeu', '=e aí'],
    it: ['=ciao', '=buongiorno', '=buonasera', '=salve', '=grazie', '=perfetto'],
  },
  // translating, rephrasing, correcting, summarising or shortening a given text
  rewrite: {
    en: ['translat', 'rephrase', 'rewrite', 'reword', 'paraphrase', 'summarise', 'summarize', 'proofread', '=shorten', 'fix the grammar', 'fix the spelling', 'fix the typo', 'make it shorter', 'make this shorter', 'make it longer', 'make this longer', 'make it sound', 'make this sound', 'make it more', 'make this more', 'make it less', 'make this less', 'tl;dr', 'tldr', 'how do you say', 'put this into', 'more formally', 'more politely'],
    zh: ['翻译', '译成', '怎么说', '改写', '改得', '润色', '概括', '总结', '改正', '错别字', '缩短'],
    ja: ['訳して', '翻訳', '何と言', 'にしてください', '書き直', '丁寧に', '要約', '短くして', '誤字', '直して'],
    ko: ['번역', '뭐라고', '바꿔', '공손', '맞춤법', '요약', '줄여', '고쳐'],
    ru: ['переведи', 'перевод', 'как по-', 'перефразируй', 'исправь ошибки', 'перескажи', 'короче', 'вежливее'],
    ar: ['ترجم', 'كيف أقول', 'أعد صياغة', 'صحح', 'لخص', 'أقصر', 'بأسلوب'],
    hi: ['अनुवाद', 'में क्या कहते', 'विनम्र', 'वर्तनी', 'सारांश', 'छोटा कर', 'में बदल'],
    es: ['traduce', 'cómo se dice', 'reescribe', 'corrige la ortografía', 'resume', 'más corto', 'más educad', 'pásame esto'],
    fr: ['tradui', 'comment dit-on', 'reformule', 'corrige les fautes', 'résume', 'plus court', 'plus poli'],
    de: ['übersetze', 'was heißt', 'formuliere', 'korrigiere', 'fass in', 'fass das', 'fass den', 'fasse ', 'zusammenfass', 'kürzer', 'freundlicher'],
    pt: ['traduz', 'como se diz', 'reescreva', 'corrija', 'resuma', 'mais curto', 'mais educad'],
    it: ['tradu', 'come si dice', 'riformula', 'correggi', 'riassumi', 'accorcia', 'più gentile'],
  },
  // a short factual question: who / what / when / where / how tall, what does … mean
  lookup: {
    en: [...['what', 'who', 'when', 'where', 'which'].flatMap((w) => ["'s", "'re", ' is', ' are', ' was', ' were', ' does', ' did'].map((v) => w + v)), 'how tall', 'how long', 'how big', 'how old', 'how far', 'how many people'],
    zh: ['是谁', '是哪', '哪个', '多高', '多长', '几月', '什么意思', '是什么', '在哪'],
    ja: ['誰', '何ですか', 'どこ', '何年', 'どれくらい', '意味'],
    ko: ['누구', '어디', '몇 년', '얼마', '무슨 뜻'],
    ru: ['кто', 'где', 'когда', 'в каком году', 'какая', 'что означает'],
    ar: ['ما هي', 'ما هو', 'من هو', 'متى', 'أين', 'ماذا تعني'],
    hi: ['क्या है', 'किसने', 'कहाँ', 'किस साल', 'क्या मतलब'],
    es: ['cuál es', 'quién', 'cuándo', 'dónde', 'en qué año', 'qué significa', 'cuántos habitantes'],
    fr: ['quelle est', 'qui a', 'en quelle année', 'où', 'que veut dire'],
    de: ['was ist', 'wer hat', 'wann', '=wo', 'wie lang', 'wie hoch', 'wie alt', 'was bedeutet'],
    pt: ['qual é', 'quem', 'em que ano', 'onde', 'o que significa'],
    it: ['qual è', 'chi ha', 'in che anno', 'dove', 'quanto è', 'cosa significa'],
  },
  // short creative pieces: poems, jokes, names, short messages
  creative: {
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
  },
};

let lexiconIndex: LexiconIndex | undefined;

/** The lexicons' index, built when the first prompt is classified (not at isolate start: most requests never are). */
function lexicons(): LexiconIndex {
  if (!lexiconIndex) {
    lexiconIndex = new LexiconIndex();
    for (const [category, lexicon] of Object.entries(LEXICONS) as [Category, Lexicon][]) lexiconIndex.add(category, lexicon);
  }
  return lexiconIndex;
}

// --- scoring ----------------------------------------------------------------------------------------------------------

type Cue = { name: Category | 'question-after-setup'; weight: number; matches: (text: string, found: Map<Category, number>) => boolean };

const QUESTION_MARKS = /[?？؟]/g;
const NUMBER = /\p{Nd}+(?:[.,]\p{Nd}+)?/gu;

/** Two or more numbers and a question: "A train leaves at 3pm going 60 mph … When does it arrive?" */
function isWordProblem(text: string): boolean {
  return (text.match(QUESTION_MARKS)?.length ?? 0) > 0 && (text.match(NUMBER)?.length ?? 0) >= 2;
}

const DENSE_SCRIPT = /[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]/;
const SENTENCE_END = /[.!。！?？؟।](?=\s|["'”’」』)]|$)/g;

/**
 * A question after some setup: at least one full sentence, then a question ("Alice, Bob and Carol each have a pet. …
 * Who has which?"). Puzzles, word problems and analysis requests are written like this; lookups, greetings and
 * rewrites are not. Longer than a line of small talk (fewer characters in Chinese, Japanese or Korean).
 */
function isQuestionAfterSetup(text: string): boolean {
  const trimmed = text.trimEnd();
  if (!/[?？؟]$/.test(trimmed) || trimmed.length < (DENSE_SCRIPT.test(trimmed) ? 30 : 60)) return false;
  return (trimmed.slice(0, -1).match(SENTENCE_END)?.length ?? 0) >= 1;
}

/** Positive cues first: a negative cue other than rewriting counts only when nothing so far asks for reasoning. */
const CUES: readonly Cue[] = [
  { name: 'code', weight: 4, matches: (t) => CODE_SHAPE.test(t) },
  { name: 'code', weight: 3, matches: (_, found) => found.has('code') },
  { name: 'tech', weight: 2, matches: (t, found) => found.has('tech') || CAPITALISED_TECH_NAMES.test(t) },
  { name: 'build', weight: 1, matches: (_, found) => found.has('build') },
  { name: 'math', weight: 3, matches: (t, found) => found.has('math') || MATH_SHAPE.test(t) || isWordProblem(t) },
  { name: 'logic', weight: 3, matches: (_, found) => found.has('logic') },
  { name: 'multi-step', weight: 3, matches: (_, found) => found.has('multi-step') },
  { name: 'why', weight: 2, matches: (_, found) => found.has('why') },
  { name: 'question-after-setup', weight: 3, matches: (t) => isQuestionAfterSetup(t) },
  { name: 'chit-chat', weight: -4, matches: (t, found) => t.length < 80 && (found.get('chit-chat') ?? Infinity) < 24 },
  { name: 'rewrite', weight: -3, matches: (_, found) => found.has('rewrite') },
  { name: 'lookup', weight: -3, matches: (t, found) => t.length < 200 && found.has('lookup') },
  { name: 'creative', weight: -3, matches: (t, found) => t.length < 200 && found.has('creative') },
];

/** Prompts at or above this score think. */
const AUTO_THRESHOLD = 3;

/** Cheap verdict on one prompt: thinking for math, code, logic and multi-step tasks; not for chit-chat, lookups, rewrites. */
export function classifyPrompt(prompt: string): { enabled: boolean; reason: string; score: number } {
  const text = prompt.length > 4000 ? `${prompt.slice(0, 2000)}\n${prompt.slice(-2000)}` : prompt;
  const found = lexicons().find(text.toLowerCase());
  let score = 0;
  let strongest: Cue | undefined;
  const seen = new Set<Cue['name']>();
  for (const cue of CUES) {
    if (seen.has(cue.name)) continue;
    if (cue.weight < 0 && cue.name !== 'rewrite' && score > 0) continue;
    if (!cue.matches(text, found)) continue;
    seen.add(cue.name); // each kind of cue counts once
    score += cue.weight;
    if (!strongest || Math.abs(cue.weight) > Math.abs(strongest.weight)) strongest = cue;
  }
  const questions = text.match(QUESTION_MARKS)?.length ?? 0;
  const numberedSteps = (text.match(/^\s*\d+[.)]\s/gm) ?? []).length;
  if (questions >= 2 || numberedSteps >= 2) score += 1;
  if (text.length > 600) score += 1;

  const enabled = score >= AUTO_THRESHOLD;
  const cue = strongest && strongest.weight > 0 === enabled ? strongest.name : enabled ? 'long or multi-part' : 'no reasoning cues';
  return { enabled, reason: `classifier: ${cue} (score ${score})`, score };
}
