package prompt

import "fmt"

var (
	smallWords = [...]string{
		"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
		"ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
		"seventeen", "eighteen", "nineteen",
	}
	tensWords = [...]string{
		"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
	}
)

// maxWords is the largest number numberWords spells. Video frame counts are
// capped by video_sampling.max_frames (64), so this is far beyond need.
const maxWords = 999_999

// numberWords spells n in English exactly as Python's num2words(n) (lang
// "en") does, which the SmolVLM video prompt uses for the frame count:
// "sixty-four", "one hundred and five", "one thousand, two hundred".
func numberWords(n int) (string, error) {
	if n < 0 || n > maxWords {
		return "", fmt.Errorf("number %d outside the spelled range 0..%d", n, maxWords)
	}
	if n < 1000 {
		return below1000(n), nil
	}
	th, rest := n/1000, n%1000
	s := below1000(th) + " thousand"
	switch {
	case rest == 0:
		return s, nil
	case rest < 100:
		// num2words joins a sub-hundred remainder with "and".
		return s + " and " + below1000(rest), nil
	default:
		return s + ", " + below1000(rest), nil
	}
}

// below1000 spells 0..999.
func below1000(n int) string {
	switch {
	case n < 20:
		return smallWords[n]
	case n < 100:
		if n%10 == 0 {
			return tensWords[n/10]
		}
		return tensWords[n/10] + "-" + smallWords[n%10]
	}
	s := smallWords[n/100] + " hundred"
	if n%100 != 0 {
		s += " and " + below1000(n%100)
	}
	return s
}
