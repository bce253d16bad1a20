// The primitives of the binary snapshot format (LedgerSnapshotFormat): little-endian fixed-width numbers, strings
// interned per payload, null markers, and reads that fail with where they were rather than past the end.
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace Orchestrator.Actors.Serialization;

internal sealed class SnapshotWriter
{
    // Lone surrogates become U+FFFD, as they would in JSON: a snapshot never fails over one odd character.
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    private readonly Dictionary<string, int> _shared = new(StringComparer.Ordinal);
    private readonly BinaryWriter _out;

    public SnapshotWriter(Stream stream)
    {
        _out = new BinaryWriter(stream, Utf8, leaveOpen: true);
    }

    private SnapshotWriter(Stream stream, Dictionary<string, int> shared) : this(stream)
    {
        _shared = new Dictionary<string, int>(shared, StringComparer.Ordinal);
    }

    /// <summary>
    /// A writer into <paramref name="stream"/> that knows the shared strings written so far (it writes them by number)
    /// and keeps the ones it adds to itself: what it writes is read by <see cref="SnapshotReader.Slice"/> of a reader at
    /// the same point.
    /// </summary>
    public SnapshotWriter Fork(Stream stream) => new(stream, _shared);

    public void Byte(byte value) => _out.Write(value);

    public void Bool(bool value) => _out.Write(value);

    public void Int16(short value) => _out.Write(value);

    public void Int32(int value) => _out.Write(value);

    public void Int64(long value) => _out.Write(value);

    public void Bytes(ReadOnlySpan<byte> value) => _out.Write(value);

    public void Guid(Guid value)
    {
        Span<byte> bytes = stackalloc byte[16];
        value.TryWriteBytes(bytes);
        _out.Write(bytes);
    }

    /// <summary>The clock time and the offset (whole minutes): the same instant, shown the same way.</summary>
    public void Time(DateTimeOffset value)
    {
        _out.Write(value.Ticks);
        _out.Write((short)value.TotalOffsetMinutes);
    }

    public void Enum<T>(T value) where T : struct, Enum
    {
        // Every enum the ledger keeps is an int underneath, read here without boxing; another size goes through Convert.
        var number = Unsafe.SizeOf<T>() == sizeof(int) ? Unsafe.BitCast<T, int>(value) : Convert.ToInt32(value, CultureInfo.InvariantCulture);
        if (number is < 0 or > byte.MaxValue)
        {
            throw new SerializationException($"ledger snapshot: {typeof(T).Name} {value} does not fit the format's one byte");
        }

        _out.Write((byte)number);
    }

    /// <summary>A string that recurs (a tenant, a host, an image, a label): written once, then by its number. 0 is null.</summary>
    public void Shared(string? value)
    {
        if (value is null)
        {
            _out.Write7BitEncodedInt(0);
        }
        else if (_shared.TryGetValue(value, out var number))
        {
            _out.Write7BitEncodedInt(number + 2);
        }
        else
        {
            _shared.Add(value, _shared.Count);
            _out.Write7BitEncodedInt(1);
            Text(value);
        }
    }

    /// <summary>A string written in full: its UTF-8 length plus one (0 is null), then its bytes.</summary>
    public void Text(string? value)
    {
        if (value is null)
        {
            _out.Write7BitEncodedInt(0);
            return;
        }

        _out.Write7BitEncodedInt(Utf8.GetByteCount(value) + 1);
        _out.Write(value.AsSpan());
    }

    /// <summary>How many items follow, plus one; 0 is a null collection.</summary>
    public void Count(int? count) => _out.Write7BitEncodedInt(count is { } n ? n + 1 : 0);

    /// <summary>Bytes written as they are: their count (as <see cref="Count"/>), then the bytes.</summary>
    public void Blob(byte[]? value)
    {
        Count(value?.Length);
        _out.Write(value ?? []);
    }

    public void Flush() => _out.Flush();

    /// <summary>
    /// Room for <paramref name="bytes"/> more in a memory stream, made at once: a stream left to grow by doubling allocated
    /// (and copied) about twice what it finally held, every step of it on the large-object heap.
    /// </summary>
    public void Reserve(long bytes)
    {
        _out.Flush();
        if (_out.BaseStream is MemoryStream stream && stream.Capacity < stream.Length + bytes)
        {
            stream.Capacity = checked((int)(stream.Length + bytes));
        }
    }
}

/// <summary>Reads what <see cref="SnapshotWriter"/> wrote; every read checks that the bytes are there and make sense.</summary>
internal sealed class SnapshotReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly List<string> _shared;
    private readonly byte[] _bytes;
    private readonly int _end;
    private int _position;

    /// <summary>Reads <paramref name="bytes"/> from <paramref name="start"/> up to (not including) <paramref name="end"/>.</summary>
    public SnapshotReader(byte[] bytes, int start, int end, byte version) : this(bytes, start, end, version, [])
    {
    }

    private SnapshotReader(byte[] bytes, int start, int end, byte version, List<string> shared)
    {
        _shared = shared;
        _bytes = bytes;
        _position = start;
        _end = end;
        Version = version;
    }

    /// <summary>The layout version the payload was written in (older ones lack fields added since).</summary>
    public byte Version { get; }

    /// <summary>What is being read, for the error message: "VM", "host", and which one.</summary>
    public string Section { get; set; } = "header";

    public int Index { get; set; } = -1;

    public bool AtEnd => _position == _end;

    /// <summary>Where the next read starts, in the whole payload (as <see cref="Corrupt"/> reports it).</summary>
    public int Position => _position;

    /// <summary>Passes over <paramref name="count"/> bytes that another reader reads (see <see cref="Slice"/>).</summary>
    public void Skip(int count) => Take(count);

    /// <summary>
    /// A reader of its own for bytes <paramref name="start"/> to <paramref name="end"/>, which a <see cref="SnapshotWriter.Fork"/>
    /// wrote: it knows the shared strings read so far, and the ones it meets stay its own.
    /// </summary>
    public SnapshotReader Slice(int start, int end) =>
        start >= 0 && start <= end && end <= _end ? new SnapshotReader(_bytes, start, end, Version, [.. _shared]) : throw Corrupt($"no bytes {start} to {end} here");

    public int Remaining => _end - _position;

    public byte Byte() => Take(1)[0];

    public bool Bool() => Byte() switch
    {
        0 => false,
        1 => true,
        var other => throw Corrupt($"{other} is not a boolean"),
    };

    public short Int16() => BinaryPrimitives.ReadInt16LittleEndian(Take(2));

    public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

    public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    public Guid Guid() => new(Take(16));

    public DateTimeOffset Time()
    {
        var ticks = Int64();
        var offsetMinutes = Int16();
        try
        {
            return new DateTimeOffset(ticks, TimeSpan.FromMinutes(offsetMinutes));
        }
        catch (ArgumentException e)
        {
            throw Corrupt($"no such time ({ticks} ticks at offset {offsetMinutes} min: {e.Message})");
        }
    }

    public T Enum<T>() where T : struct, Enum
    {
        var number = Byte();
        return EnumValues<T>.ByNumber[number] is { } value ? value : throw Corrupt($"{number} is no {typeof(T).Name}");
    }

    public string? Shared()
    {
        var tag = VarInt();
        switch (tag)
        {
            case 0:
                return null;
            case 1:
                var value = Text() ?? throw Corrupt("a shared string is null");
                _shared.Add(value);
                return value;
            default:
                return tag - 2 < _shared.Count ? _shared[tag - 2] : throw Corrupt($"shared string #{tag - 2} was never written (only {_shared.Count} were)");
        }
    }

    public string? Text()
    {
        var length = VarInt() - 1;
        if (length < 0)
        {
            return null;
        }

        var utf8 = Take(length);
        try
        {
            return StrictUtf8.GetString(utf8);
        }
        catch (DecoderFallbackException)
        {
            throw Corrupt("a string is not UTF-8");
        }
    }

    /// <summary>A collection's size, or null; never more items than there are bytes left, so garbage cannot allocate.</summary>
    public int? Count()
    {
        var count = VarInt() - 1;
        if (count < 0)
        {
            return null;
        }

        return count <= Remaining ? count : throw Corrupt($"{count} items announced, {Remaining} bytes left");
    }

    public byte[]? Blob() => Count() is { } length ? Take(length).ToArray() : null;

    public SerializationException Corrupt(string what) =>
        new($"ledger snapshot is corrupt at byte {_position} ({Section}{(Index >= 0 ? $" #{Index}" : "")}): {what}");

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > _end - _position)
        {
            throw Corrupt($"truncated: {count} more bytes needed, {_end - _position} left");
        }

        var span = new ReadOnlySpan<byte>(_bytes, _position, count);
        _position += count;
        return span;
    }

    private int VarInt()
    {
        // BinaryWriter.Write7BitEncodedInt: 7 bits a byte, low first, the high bit set on every byte but the last.
        var value = 0;
        for (var shift = 0; shift < 35; shift += 7)
        {
            var b = Byte();
            value |= (b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value >= 0 ? value : throw Corrupt($"a length of {value}");
            }
        }

        throw Corrupt("a number longer than five bytes");
    }

    /// <summary>The defined values of an enum by their number (null: undefined), so a read checks with one lookup.</summary>
    private static class EnumValues<T> where T : struct, Enum
    {
        public static readonly T?[] ByNumber = Build();

        private static T?[] Build()
        {
            var table = new T?[byte.MaxValue + 1];
            foreach (var value in System.Enum.GetValues<T>())
            {
                var number = Convert.ToInt32(value, CultureInfo.InvariantCulture);
                if (number is >= 0 and <= byte.MaxValue)
                {
                    table[number] = value;
                }
            }

            return table;
        }
    }
}
