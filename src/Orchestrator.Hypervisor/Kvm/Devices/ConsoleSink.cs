// Where the serial port's bytes go: raw into console.log (as QEMU's file chardev writes it), and cut into lines for
// ConsoleLine events. The guest is untrusted, so a line without a newline is cut at a fixed length.
using System.Text;

namespace Orchestrator.Hypervisor.Kvm.Devices;

internal sealed class ConsoleSink : IDisposable
{
    public const int MaxLineBytes = 4096;

    private readonly object _lock = new();
    private readonly Stream? _log;
    private readonly Action<string> _onLine;
    private readonly byte[] _line = new byte[MaxLineBytes];
    private int _length;
    private bool _disposed;

    /// <param name="log">Receives every byte; flushed at each newline so the file is current line by line.</param>
    /// <param name="onLine">Each complete line, without its newline and a trailing CR.</param>
    public ConsoleSink(Stream? log, Action<string> onLine)
    {
        _log = log;
        _onLine = onLine;
    }

    public void Write(byte value)
    {
        string? line = null;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _log?.WriteByte(value);
            if (value == (byte)'\n')
            {
                _log?.Flush();
                line = TakeLine();
            }
            else
            {
                _line[_length++] = value;
                if (_length == MaxLineBytes)
                {
                    line = TakeLine();
                }
            }
        }

        if (line is not null)
        {
            _onLine(line);
        }
    }

    /// <summary>Emits what is left of a last line without newline, flushes and closes the log.</summary>
    public void Dispose()
    {
        string? line = null;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            if (_length > 0)
            {
                line = TakeLine();
            }

            _log?.Dispose();
        }

        if (line is not null)
        {
            _onLine(line);
        }
    }

    private string TakeLine()
    {
        var length = _length;
        _length = 0;
        if (length > 0 && _line[length - 1] == (byte)'\r')
        {
            length--;
        }

        return Encoding.UTF8.GetString(_line, 0, length);
    }
}
