""" A main-mode client written as for service_framework 0.0.12: asks the converter to
convert `amount` (a bare `amount 40` after the flags) from each of its currencies """

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()


def main(to_send, config):
    for currency in config['currencies']:
        reply = to_send('connection', 'convert', {
            'currency': currency, 'amount': config['amount'],
        })
        LOG.info('Converted: %s', reply)
        print(f"{config['amount']} {currency} = {reply['usd']:.2f} USD "
              f"(rate {reply['rate']})", flush=True)


connection_models = {
    'out': {
        'convert': {
            'connection_type': 'requester',
            'required_arguments': {
                'currency': str,
                'amount': int,
            },
            'required_return_arguments': {
                'usd': float,
                'rate': float,
            },
        }
    }
}

config_model = {
    'required': {
        'amount': int,
        'currencies': [str],
    },
}
