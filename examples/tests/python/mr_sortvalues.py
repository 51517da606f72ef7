"""The words of each initial letter, in the order the framework sorts them (SORT_VALUES)."""
import re

from mrjob.job import MRJob

WORD = re.compile(r"[\w']+")


class MRSortedWordsPerLetter(MRJob):
    SORT_VALUES = True

    def mapper(self, _, line):
        for word in WORD.findall(line):
            yield word[0].lower(), word.lower()

    def reducer(self, letter, words):
        # No sorting here: the values must arrive sorted. Repeats are dropped, so the output
        # is small, but a value out of order still shows.
        out = []
        for w in words:
            if not out or out[-1] != w:
                out.append(w)
        yield letter, out


if __name__ == '__main__':
    MRSortedWordsPerLetter.run()
