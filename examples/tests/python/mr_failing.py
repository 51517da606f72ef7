"""A mapper that fails on a line saying so: the traceback must reach the user."""
from mrjob.job import MRJob


class MRFailing(MRJob):
    def mapper(self, _, line):
        if 'explode' in line:
            raise ValueError('the mapper was told to explode')
        yield line, 1


if __name__ == '__main__':
    MRFailing.run()
