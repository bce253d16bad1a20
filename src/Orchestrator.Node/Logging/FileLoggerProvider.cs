using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace Orchestrator.Node.Logging;

/// <summary>
/// Appends every entry to one file (created 0600: a log names hosts, paths and tenants), formatted by the same
/// <see cref="ConsoleFormatter"/> as the console, so the file reads exactly like the console would.
/// </summary>
public sealed class FileLoggerProvider : ILoggerProvider
{
    private readonly ConsoleFormatter _formatter;
    private readonly StreamWriter _writer;
    private readonly Lock _lock = new();
    private bool _disposed;

    public FileLoggerProvider(string path, ConsoleFormatter formatter)
    {
        _formatter = formatter;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.Append,
            Access = FileAccess.Write,
            Share = FileShare.ReadWrite,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        _writer = new StreamWriter(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)) { AutoFlush = true };
    }

    public ILogger CreateLogger(string categoryName) => new FileLogger(this, categoryName);

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _writer.Dispose();
        }
    }

    private void Write<TState>(in LogEntry<TState> entry)
    {
        using var text = new StringWriter();
        _formatter.Write(entry, null, text);
        if (text.GetStringBuilder().Length == 0)
        {
            return;
        }

        lock (_lock)
        {
            if (!_disposed)
            {
                _writer.Write(text.GetStringBuilder());
            }
        }
    }

    private sealed class FileLogger(FileLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => NullLogger.Instance.BeginScope(state);

        // The factory's rules (orchestrator.logging.level and levels) have filtered already.
        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                provider.Write(new LogEntry<TState>(logLevel, category, eventId, state, exception, formatter));
            }
        }
    }
}
