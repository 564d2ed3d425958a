package bpetrain

// Corpus is a fixed training text for test tokenizers: chat-style English
// with digits, punctuation, code and a little non-Latin text, so that the
// learned merges exercise multi-byte characters too.
const Corpus = `User: Can you describe this image?
Assistant: The image shows a small red boat on a calm lake at sunrise. Behind the boat there are tall pine trees and a wooden cabin with a green roof. The sky is orange and pink, and a few clouds float above the mountains.
User: How many people are in the boat?
Assistant: There are 2 people in the boat. One of them is holding a fishing rod, and the other one is reading a book.
User: What time of day is it?
Assistant: It looks like early morning, around 6:30 or 7:00, because the sun is low and the light is warm.
User: Describe this chart in detail.
Assistant: The chart compares the sales of 4 products over 12 months. Product A grows from 120 units in January to 480 units in December. Product B stays flat at about 300 units. Product C drops in the summer and recovers in the autumn. Product D is the smallest, with fewer than 100 units each month.
User: Read the text on the sign.
Assistant: The sign says "Welcome to the National Park. Please keep your dog on a leash and take your trash with you." Below it, a smaller line reads "Open 8am - 8pm, 7 days a week".
User: Is there anything unusual in this picture?
Assistant: Yes. The cat is sitting on top of the refrigerator, and it's wearing a tiny blue hat. That's not something you'd normally see in a kitchen!
User: Write a short poem about the photo.
Assistant: Over the water the morning is bright,
the boat drifts slowly in the golden light;
the trees stand quiet, the mountains are high,
and two small clouds are crossing the sky.
User: Translate the caption into French and German.
Assistant: French: « Un petit bateau rouge sur un lac calme au lever du soleil. » German: „Ein kleines rotes Boot auf einem ruhigen See bei Sonnenaufgang."
Café, naïve, über, señor, façade, smörgåsbord, déjà vu.
日本語のテキストも少し含まれています。猫が冷蔵庫の上に座っています。
中文：这是一张图片，图片里有一只猫。 한국어: 고양이가 있습니다. Русский: кошка сидит на холодильнике. العربية: قطة على الثلاجة.
Emoji: 🙂 👍 🐱 ❤️ 🚣‍♀️ 🇫🇷
Code:
func main() {
	for i := 0; i < 10; i++ {
		fmt.Println("hello, world", i*i)
	}
}
def describe(image):
    return model.generate(image, max_new_tokens=64)  # greedy
{"ids": [1, 11126, 42], "tokens": ["<|im_start|>", "User", ":"]}
Numbers: 3.14159, 2,718, 1e-5, 49152, 0x1F, 100%, $25.99, 12/31/2024, +33 1 23 45 67 89.
The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!
We're sure they'll say it's fine; I've seen what you'd do, and I'm not worried. Don't.
`
