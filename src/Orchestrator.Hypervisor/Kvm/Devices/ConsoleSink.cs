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
    private bool _logFailed;

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

            Log(log => log.WriteByte(value));
            if (value == (byte)'\n')
            {
                Log(log => log.Flush());
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

            Log(log => log.Dispose());
        }

        if (line is not null)
        {
            _onLine(line);
        }
    }

    /// <summary>
    /// The log's writes run on the vCPU thread: a full or failing disk must not fail the vCPU (QEMU's file chardev drops
    /// the bytes too), so the log stops at its first error and the lines still go out as events.
    /// </summary>
    private void Log(Action<Stream> write)
    {
        if (_log is null || _logFailed)
        {
            return;
        }

        try
        {
            write(_log);
        }
        catch (IOException)
        {
            _logFailed = true;
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
